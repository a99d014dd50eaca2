"""An independent WebRTC implementation (aiortc) as a WHIP publisher or WHEP viewer, for the
browser tests.

    python whip_client.py publish|publish-h264|watch <endpoint URL> <bearer token>

`publish-h264` sends its video as H.264 only, as OBS Studio does.

Prints one JSON object per line on stdout: {"event": "refused", "status": 403, "problem": {...}},
{"event": "created", "location": "/whip/..."}, {"event": "connected"}, and for a viewer
{"event": "frames", "video": n, "audio": n} about once a second (frames decoded). Ends the
session with DELETE and exits on SIGTERM or when stdin closes.
"""

import asyncio
import json
import signal
import sys
import urllib.error
import urllib.request
from urllib.parse import urljoin

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

# aioice leaves out loopback addresses; the tests run on loopback only.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def say(**event):
    print(json.dumps(event), flush=True)


def http(method, url, token=None, body=None):
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/sdp")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, dict(res.headers), res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def main(mode, url, token):
    # No STUN server: aiortc would add a public one otherwise.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    frames = {"video": 0, "audio": 0}
    if mode.startswith("publish"):
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(VideoStreamTrack())
        if mode == "publish-h264":
            h264 = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType == "video/H264"
            ]
            for t in pc.getTransceivers():
                if t.kind == "video":
                    t.setCodecPreferences(h264)
    else:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def on_track(track):
            async def count():
                while True:
                    try:
                        await track.recv()
                    except Exception:
                        return
                    frames[track.kind] += 1

            asyncio.ensure_future(count())

    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState == "connected":
            connected.set()

    # aiortc gathers all candidates before the offer is done: no trickle needed.
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, headers, body = await loop.run_in_executor(
        None, http, "POST", url, token, pc.localDescription.sdp.encode()
    )
    if status != 201:
        try:
            problem = json.loads(body)
        except ValueError:
            problem = body
        say(event="refused", status=status, problem=problem)
        await pc.close()
        return 3
    location = urljoin(url, headers.get("Location") or headers.get("location"))
    # The codecs the server answered with, e.g. ["opus", "H264"].
    codecs = sorted({l.split()[1].split("/")[0] for l in body.splitlines() if l.startswith("a=rtpmap:")})
    say(event="created", location=location, codecs=codecs)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin, lambda: sys.stdin.readline() or stop.set())
    await asyncio.wait_for(connected.wait(), 30)
    say(event="connected")
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1)
        except asyncio.TimeoutError:
            pass
        if mode == "watch":
            say(event="frames", **frames)
    status, _, _ = await loop.run_in_executor(None, http, "DELETE", location)
    say(event="deleted", status=status)
    await pc.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))
