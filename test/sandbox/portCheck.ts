/** Is a TCP port free? Asked before the sandbox touches anything, so a second `npm start` leaves the first alone. */
import { createServer } from 'node:net';

/** Resolves true when nothing listens on `host:port` (by briefly listening there), false when it is taken. */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    });
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}
