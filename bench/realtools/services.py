#!/usr/bin/python3
"""Victim services and benign clients for bench/realtools.sh (Debian's python3, stdlib only).

Run inside the victim's network namespace by the script:
  services.py serve ADDR DNS_PORT   HTTP on 80 (pages, a basic-auth area, an item page that
                                    reads a numeric id, package files), an FTP-style login on 21
                                    (USER/PASS, every password refused), DNS on DNS_PORT (A, AAAA,
                                    MX, TXT answers for any name; NOTIMP for the rest)
Run inside the attacker's namespace for benign traffic:
  services.py dns SERVER NAME:TYPE...  one query each, waits for the answer
Every loop is bounded: the server runs until the script kills it (at most the run's time limit).
"""

import base64
import http.server
import os
import socket
import socketserver
import struct
import sys
import threading
import time

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "NULL": 10}
ADMIN_PASSWORD = "correct horse battery staple"  # in no wordlist the script uses


class Http(http.server.BaseHTTPRequestHandler):
    server_version = "Apache/2.4.62"
    sys_version = ""

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="text/html", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        n = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
        self.rfile.read(n)
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        if path.startswith("/admin"):
            want = "Basic " + base64.b64encode(b"admin:" + ADMIN_PASSWORD.encode()).decode()
            if self.headers.get("Authorization") == want:
                return self.send(200, b"<html>admin</html>\n")
            return self.send(401, b"unauthorized\n", extra=[("WWW-Authenticate", 'Basic realm="admin"')])
        if path == "/item":
            # A page whose output depends on a numeric id, as a real catalogue would.
            ident = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("id", "1")
            if ident.isdigit():
                return self.send(200, f"<html><h1>item {int(ident)}</h1><p>in stock</p></html>\n".encode())
            return self.send(500, b"<html>database error</html>\n")
        if path.startswith("/pool/") or path.startswith("/dists/"):
            size = 2_000_000 if path.endswith(".deb") else 40_000
            return self.send(200, os.urandom(size), "application/octet-stream")
        if path.startswith("/api/"):
            return self.send(200, b'{"tasks":[]}\n', "application/json")
        if path in ("/", "/index.html", "/news", "/about", "/style.css", "/app.js", "/logo.png"):
            body = b"<html><head><title>lab</title></head><body>" + b"lorem ipsum " * 200 + b"</body></html>\n"
            return self.send(200, body)
        return self.send(404, b"<html>not found</html>\n")


class ThreadingHttp(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Ftp(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 (vsFTPd 3.0.3)\r\n")
        for _ in range(64):
            line = self.rfile.readline(512)
            if not line:
                return
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"USER":
                self.wfile.write(b"331 Please specify the password.\r\n")
            elif verb == b"PASS":
                time.sleep(0.2)
                self.wfile.write(b"530 Login incorrect.\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 Goodbye.\r\n")
                return
            else:
                self.wfile.write(b"530 Please login with USER and PASS.\r\n")


class ThreadingTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def parse_question(q):
    i = 12
    while i < len(q) and q[i] != 0:
        i += q[i] + 1
    return q[12 : i + 5], struct.unpack("!H", q[i + 1 : i + 3])[0]


def dns_answer(q, addr):
    if len(q) < 17 or q[2] & 0x80:
        return None
    question, qtype = parse_question(q)
    rdata = {
        1: socket.inet_aton(addr),
        28: bytes(15) + b"\x01",
        15: b"\x00\x0a\xc0\x0c",
        16: b"\x17v=spf1 include:lab ~all",
    }.get(qtype)
    flags = 0x8180 | (q[2] & 1) << 8 if rdata else 0x8184
    head = q[:2] + struct.pack("!HHHHH", flags, 1, 1 if rdata else 0, 0, 0)
    if rdata is None:
        return head + question
    return head + question + b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 300, len(rdata)) + rdata


def serve(addr, dns_port):
    http_server = ThreadingHttp((addr, 80), Http)
    ftp_server = ThreadingTcp((addr, 21), Ftp)
    for s in (http_server, ftp_server):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    if dns_port:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", dns_port))
        threading.Thread(target=dns_loop, args=(sock, addr), daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def dns_loop(sock, addr):
    while True:
        q, peer = sock.recvfrom(2048)
        try:
            a = dns_answer(q, addr)
        except (IndexError, struct.error):
            a = None
        if a:
            sock.sendto(a, peer)


def query(name, qtype, ident):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p)
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", qtype, 1)


def dns_client(server, specs):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    answered = 0
    for i, spec in enumerate(specs):
        name, _, kind = spec.partition(":")
        sock.sendto(query(name, TYPES[kind or "A"], 0x2000 + i), (server, 53))
        try:
            sock.recvfrom(2048)
            answered += 1
        except socket.timeout:
            pass
        time.sleep(0.3)
    print(f"{answered} of {len(specs)} answered")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "dns":
        dns_client(sys.argv[2], sys.argv[3:])
    else:
        sys.exit("usage: services.py serve ADDR DNS_PORT | dns SERVER NAME:TYPE...")
