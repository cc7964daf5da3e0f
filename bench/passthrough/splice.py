#!/usr/bin/env python3
"""Pushes bytes through a TLS passthrough proxy and reports the proxy's CPU time per byte.

A raw backend (PROXY v2 header read and checked, then a byte sink or source) and clients that open connections with
a real ClientHello (from Python's ssl module, never completed) followed by opaque bytes. The proxy splices bytes, so
it never notices that the "TLS" after the hello is not TLS. Upload: clients send, the backend counts; download: the
backend sends, clients count. CPU is the proxy process's utime+stime from /proc, before and after.
"""
import argparse, os, socket, ssl, struct, sys, threading, time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
CHUNK = 256 * 1024


def client_hello(name):
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        part = conn.recv(n - len(data))
        if not part:
            raise EOFError("closed in the header")
        data += part
    return data


def backend(listener, phase, hello_len):
    """One accept loop for both phases: phase holds the current mode, byte count and result list."""
    def serve(conn):
        mode, nbytes, counts = phase["mode"], phase["bytes"], phase["counts"]
        with conn:
            head = read_exact(conn, 16)
            if head[:12] != SIG:
                raise ValueError("no PROXY v2 header")
            read_exact(conn, struct.unpack("!H", head[14:16])[0])
            read_exact(conn, hello_len)
            total = 0
            if mode == "upload":
                buf = bytearray(CHUNK)
                while True:
                    n = conn.recv_into(buf)
                    if not n:
                        break
                    total += n
            else:
                block = b"\0" * CHUNK
                left = nbytes
                while left > 0:
                    conn.sendall(block[: min(CHUNK, left)])
                    left -= min(CHUNK, left)
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)
                total = nbytes
            counts.append(total)

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def client(port, hello, mode, nbytes, received):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(hello)
        if mode == "upload":
            block = b"\0" * CHUNK
            left = nbytes
            while left > 0:
                s.sendall(block[: min(CHUNK, left)])
                left -= min(CHUNK, left)
            s.shutdown(socket.SHUT_WR)
            s.recv(1)
        else:
            buf = bytearray(CHUNK)
            total = 0
            while True:
                n = s.recv_into(buf)
                if not n:
                    break
                total += n
            s.shutdown(socket.SHUT_WR)
            received.append(total)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--proxy-port", type=int, required=True)
    p.add_argument("--backend-port", type=int, required=True)
    p.add_argument("--proxy-pid", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--mb", type=int, default=2048, help="MiB per direction, over all connections")
    p.add_argument("--connections", type=int, default=4)
    a = p.parse_args()
    hello = client_hello(a.name)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", a.backend_port))
    listener.listen(128)
    per = a.mb * 1024 * 1024 // a.connections
    phase = {}
    threading.Thread(target=backend, args=(listener, phase, len(hello)), daemon=True).start()
    for mode in ("upload", "download"):
        counts, received = [], []
        phase.update(mode=mode, bytes=per, counts=counts)
        cpu0, wall0 = cpu_seconds(a.proxy_pid), time.monotonic()
        clients = [threading.Thread(target=client, args=(a.proxy_port, hello, mode, per, received)) for _ in range(a.connections)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(600)
        if mode == "upload":
            deadline = time.monotonic() + 30
            while len(counts) < a.connections and time.monotonic() < deadline:
                time.sleep(0.01)
        cpu, wall = cpu_seconds(a.proxy_pid) - cpu0, time.monotonic() - wall0
        moved = sum(counts) if mode == "upload" else sum(received)
        if moved != per * a.connections:
            sys.exit(f"{a.label} {mode}: moved {moved} of {per * a.connections} bytes")
        mib = moved / 1048576
        print(f"{a.label:10} {mode:8} {mib:8.0f} MiB  wall {wall:6.2f} s  {mib / wall:8.0f} MiB/s  proxy CPU {cpu:6.2f} s  {mib / max(cpu, 0.01):8.0f} MiB per CPU-second", flush=True)
    listener.close()

if __name__ == "__main__":
    main()
