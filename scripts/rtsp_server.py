#!/usr/bin/python3
"""A real RTSP server for edge-tl's RTSP tests, built on GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-{good,bad,ugly}).

It streams JPEG pictures as H.264 (x264enc, High profile with CABAC by default, as most
cameras send; or H.265 with x265enc for the refusal test) over
RTSP, to every client from the first picture, each picture held for --hold frames, at --fps,
scaled into --size with borders (the aspect ratio kept). After the last picture the stream
starts again.

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --mount /pets LIST.txt \
        [--mount-h265 /hevc LIST.txt] [--user U --password P] [--size 640x360]

LIST.txt holds one picture path per line. The script prints "ready" on stdout once it listens
and runs until killed. Debian's python3 (/usr/bin/python3) is needed: the GObject bindings are
a Debian package, not a pip one.
"""

import argparse
import os
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def frames_folder(listing, hold):
    """A folder of numbered links, each picture `hold` times, for multifilesrc."""
    with open(listing) as f:
        pictures = [line.strip() for line in f if line.strip()]
    if not pictures:
        sys.exit(f"{listing}: no pictures listed")
    folder = tempfile.mkdtemp(prefix="edge-tl-rtsp-")
    n = 0
    for picture in pictures:
        for _ in range(hold):
            os.symlink(os.path.abspath(picture), os.path.join(folder, f"{n:06d}.jpg"))
            n += 1
    return folder, n


def launch(folder, count, fps, width, height, codec, profile):
    encoder = {
        "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={k} "
        "bitrate=2000 ! video/x-h264,profile={profile} ! rtph264pay name=pay0 pt=96",
        "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={k} "
        "! rtph265pay name=pay0 pt=96",
    }[codec].format(k=fps, profile=profile)
    return (
        f"( multifilesrc location={folder}/%06d.jpg index=0 stop-index={count - 1} loop=true "
        f"caps=image/jpeg,framerate={fps}/1 ! jpegdec ! videoconvert ! "
        f"videoscale add-borders=true ! "
        f"video/x-raw,width={width},height={height},pixel-aspect-ratio=1/1,format=I420 ! "
        f"{encoder} )"
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mount", nargs=2, action="append", default=[], metavar=("PATH", "LIST"))
    p.add_argument("--mount-h265", nargs=2, action="append", default=[], metavar=("PATH", "LIST"))
    p.add_argument("--hold", type=int, default=3)
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--size", default="640x360")
    p.add_argument(
        "--profile", default="high", help="H.264 profile: high (most cameras), main, baseline"
    )
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
    for codec, entries in (("h264", args.mount), ("h265", args.mount_h265)):
        for path, listing in entries:
            folder, count = frames_folder(listing, args.hold)
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(launch(folder, count, args.fps, width, height, codec, args.profile))
            factory.set_shared(False)
            factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
            if args.user:
                permissions = GstRtspServer.RTSPPermissions()
                permissions.add_permission_for_role("user", "media.factory.access", True)
                permissions.add_permission_for_role("user", "media.factory.construct", True)
                factory.set_permissions(permissions)
            mounts.add_factory(path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
