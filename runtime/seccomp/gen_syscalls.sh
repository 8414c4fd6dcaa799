#!/bin/sh
# Regenerates syscalls_amd64.go from the kernel headers (linux-libc-dev).
set -e
cd "$(dirname "$0")"
{
  echo '// Code generated from <asm/unistd_64.h> by gen_syscalls.sh; DO NOT EDIT.'
  echo; echo 'package seccomp'; echo
  echo '// syscallsAMD64 maps x86-64 system call names to their numbers.'
  echo 'var syscallsAMD64 = map[string]uint32{'
  grep '^#define __NR_' /usr/include/x86_64-linux-gnu/asm/unistd_64.h |
    awk '{sub("__NR_","",$2); printf "\t\"%s\": %s,\n", $2, $3}'
  echo '}'
} > syscalls_amd64.go
gofmt -w syscalls_amd64.go
