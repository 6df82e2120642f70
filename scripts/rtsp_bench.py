#!/usr/bin/env python3
"""What RTSP cameras cost edge-tl: H.264 decoding per picture on the capture threads, and
the loop's results/s, at 640x360, 1280x720 and 1920x1080, and for 2 and 4 cameras at 640x360.

    python3 scripts/rtsp_bench.py target/release/edge-tl [--fps 25] [--seconds 20] [--ffmpeg]

For each run, scripts/rtsp_server.py (GStreamer, x264 High profile, on this machine) streams
the shared test photos at --fps to each camera; `edge-tl run` classifies the streams
(ImageNet classes, --threads 1 by default). Decode cost = CPU time of edge-tl's `capture`
threads (RTSP parsing, H.264 decoding, YUV to RGB) over the pictures the streams sent in that
time, read from /proc/PID/task/*/stat after the first results; the server's own encoding
runs on the same cores, so results/s is a floor for cameras on the network.

With --ffmpeg (needs `apt install ffmpeg`), the peer on the same streams: `ffmpeg -threads 1` (libavcodec's H.264
decoder on one thread, as OpenH264 decodes on one; RTSP over TCP; output discarded, so no RGB
conversion, which edge-tl's figure includes), its CPU time per picture received.
"""

import argparse
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def thread_cpu(pid, name):
    """CPU seconds (user + system) of the threads of `pid` called `name`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(f"{task}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / ticks


def start_server(listing, fps, size):
    """scripts/rtsp_server.py streaming the pictures of `listing` at `fps` and `size`, once it
    says it is ready; returns the process and the stream's URL."""
    port = free_port()
    server = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(HERE, "rtsp_server.py"), "--port", str(port),
         "--mount", "/bench", listing, "--hold", "1", "--fps", str(fps), "--size", size],
        stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    return server, f"rtsp://127.0.0.1:{port}/bench"


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return " ".join(sorted(f for f in flags if f.startswith(("avx", "fma", "asimd"))))
    return "?"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--threads", default="1")
    p.add_argument("--sizes", default="640x360,1280x720,1920x1080")
    p.add_argument("--cameras", default="1,2,4", help="camera counts, at --multi-size")
    p.add_argument("--multi-size", default="640x360")
    p.add_argument("--ffmpeg", action="store_true", help="also measure ffmpeg on each size")
    args = p.parse_args()
    shared = os.environ.get("EDGE_TL_SHARED", os.path.join(HERE, "..", "..", "shared"))
    photos = sorted(glob.glob(os.path.join(shared, "data/catsdogs/test/*/*.jpg")))[::40]
    listing = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    listing.write("\n".join(photos))
    listing.close()
    print(f"CPU vector flags: {cpu_flags()}; {os.cpu_count()} cores; stream {args.fps} fps, "
          f"x264 High profile from the same machine")
    print(f"{'size':>10} {'cameras':>7} {'decode ms/picture':>18} {'pictures':>9} {'results/s':>10}")
    runs = [(size, 1) for size in args.sizes.split(",")]
    runs += [(args.multi_size, n) for n in map(int, args.cameras.split(",")) if n > 1]
    for size, cameras in runs:
        server, url = start_server(listing.name, args.fps, size)
        sources = ["--source", url] if cameras == 1 else [
            a for i in range(cameras) for a in ("--camera", f"c{i}={url}")]
        run = subprocess.Popen(
            [args.binary, "run", *sources, "--threads", args.threads, "--top", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        start = None
        try:
            for n, line in enumerate(run.stdout):
                result = json.loads(line)
                now = time.monotonic()
                if n == 20 * cameras:
                    start = (now, thread_cpu(run.pid, "capture"), n)
                elif start and now - start[0] >= args.seconds:
                    cpu = thread_cpu(run.pid, "capture") - start[1]
                    # Every camera decodes every picture its stream sends.
                    pictures = args.fps * cameras * (now - start[0])
                    rate = (n - start[2]) / (now - start[0])
                    print(f"{size:>10} {cameras:>7} {1000 * cpu / pictures:>18.2f} "
                          f"{pictures:>9.0f} {rate:>10.1f}")
                    break
        finally:
            run.terminate()
            run.wait()
            server.kill()
            server.wait()
    if args.ffmpeg:
        print(f"{'size':>10} {'ffmpeg -threads 1 decode ms/picture':>36} {'pictures':>9}")
        for size in args.sizes.split(","):
            server, url = start_server(listing.name, args.fps, size)
            try:
                before = os.times()
                out = subprocess.run(
                    ["ffmpeg", "-nostdin", "-hide_banner", "-threads", "1", "-rtsp_transport",
                     "tcp", "-i", url, "-t", str(args.seconds),
                     "-f", "null", "-"], capture_output=True, text=True, check=True)
                after = os.times()
                cpu = (after.children_user - before.children_user
                       + after.children_system - before.children_system)
                frames = [ln for ln in out.stderr.replace("\r", "\n").splitlines()
                          if ln.startswith("frame=")]
                pictures = int(frames[-1].split("=")[1].split()[0])
                print(f"{size:>10} {1000 * cpu / pictures:>36.2f} {pictures:>9}")
            finally:
                server.kill()
                server.wait()
    os.unlink(listing.name)


if __name__ == "__main__":
    sys.exit(main())
