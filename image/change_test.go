package image

import (
	"reflect"
	"testing"
)

func TestApplyChange(t *testing.T) {
	for _, tc := range []struct {
		changes []string
		want    ContainerConfig
	}{
		{[]string{`CMD ["sh"]`}, ContainerConfig{Cmd: []string{"sh"}}},
		{[]string{`CMD echo hi`}, ContainerConfig{Cmd: []string{"/bin/sh", "-c", "echo hi"}}},
		{[]string{`ENTRYPOINT ["/hello","-v"]`}, ContainerConfig{Entrypoint: []string{"/hello", "-v"}}},
		{[]string{`ENV A=1 B="two words"`, `ENV A=3`}, ContainerConfig{Env: []string{"A=3", "B=two words"}}},
		{[]string{`ENV PATH /usr/bin:/bin`}, ContainerConfig{Env: []string{"PATH=/usr/bin:/bin"}}},
		{[]string{`LABEL a=b`}, ContainerConfig{Labels: map[string]string{"a": "b"}}},
		{[]string{`EXPOSE 80 53/udp`}, ContainerConfig{ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}}}},
		{[]string{`VOLUME ["/data"]`}, ContainerConfig{Volumes: map[string]struct{}{"/data": {}}}},
		{[]string{`WORKDIR /app`, `WORKDIR sub`}, ContainerConfig{WorkingDir: "/app/sub"}},
		{[]string{`user nobody`, `STOPSIGNAL SIGINT`}, ContainerConfig{User: "nobody", StopSignal: "SIGINT"}},
	} {
		var c Config
		for _, ch := range tc.changes {
			if err := ApplyChange(&c, ch); err != nil {
				t.Fatalf("%v: %v", tc.changes, err)
			}
		}
		if !reflect.DeepEqual(c.Config, tc.want) {
			t.Errorf("%v: got %+v, want %+v", tc.changes, c.Config, tc.want)
		}
	}
	for _, bad := range []string{"RUN echo", "", "FROM x", `ENV`, `LABEL "a`} {
		var c Config
		if err := ApplyChange(&c, bad); err == nil {
			t.Errorf("ApplyChange(%q) accepted", bad)
		}
	}
}
