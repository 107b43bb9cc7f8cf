"""A network camera for tests: an HTTP MJPEG stream (multipart/x-mixed-replace, as IP cameras and
motion/mjpg-streamer serve it) that a test can pause (the camera stalls: the connection stays open,
nothing comes) or take down (open streams are cut and new ones refused, as when a camera fails or
is unplugged), and bring back."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time

import numpy as np


class MjpegServer:
    def __init__(self, image: np.ndarray, fps: float = 10.0) -> None:
        import cv2

        self.jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        self.period = 1.0 / fps
        self.paused = threading.Event()
        self.down = threading.Event()
        self.frames_sent = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if server.down.is_set():
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not server.closed and not server.down.is_set():
                        if server.paused.is_set():
                            time.sleep(0.05)
                            continue
                        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(server.jpeg)
                        self.wfile.write(part + server.jpeg + b"\r\n")
                        server.frames_sent += 1
                        time.sleep(server.period)
                except OSError:  # the client went away
                    pass

            def log_message(self, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.closed = False
        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closed = True
        self.httpd.shutdown()
        self.httpd.server_close()
