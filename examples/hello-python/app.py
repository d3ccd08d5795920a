"""The smallest Skiff app in Python: answers on $PORT and says which instance answered."""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def instance_index():
    try:
        index = json.loads(os.environ.get("VCAP_APPLICATION") or "{}").get("instance_index")
        if isinstance(index, int):
            return index
    except ValueError:
        pass
    return os.environ.get("CF_INSTANCE_INDEX", "0")


INDEX = instance_index()


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"Hello from hello-python, instance {INDEX}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()

    def log_message(self, format, *args):
        # One line per request on stdout, which `skiff logs` shows.
        sys.stdout.write("%s %s\n" % (self.address_string(), format % args))
        sys.stdout.flush()


def main():
    port = int(os.environ.get("PORT") or os.environ.get("VCAP_APP_PORT") or 3000)
    server = ThreadingHTTPServer(("0.0.0.0", port), Hello)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"hello-python instance {INDEX} listening on {port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
