// The trivial server: reads the body and answers 200 {}. The load generator's rate against it is the
// generator's ceiling on this machine: no target can be measured faster than that.
import http from 'node:http';

http.createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
    res.end('{}');
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
