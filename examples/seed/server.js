// The seed's example app: answers every request on port 3000.
const http = require("http");

const port = Number(process.env.PORT || 3000);

const server = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
  res.end("<h1>Hello from myapp, built by berth</h1>\n");
});

server.listen(port, "0.0.0.0", () => {
  console.log(`myapp listening on port ${port}`);
});

// Stop promptly on docker stop / berth stop.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
