#!/usr/bin/env python3
"""A hostile host on the link, on one switch port (run it in the switch's namespace, on the port
that leads to the host under test). Every mode is bounded in time and prints one JSON line with
what it did.

  record IFACE SECS FILE              save ipmpd probe replies leaving IFACE towards the host
  replay IFACE FILE SECS [SRC]        send the saved frames again, round-robin (from SRC: rewritten
                                      IPv4 source), about 2,000 a second
  reflect IFACE SECS past|future      answer every ipmpd probe arriving on IFACE at once, as the
                                      target would, but with the kernel transmit time rewritten
                                      (a second before the send, or ten seconds after it)
  flood IFACE DSTMAC DSTIP SECS       well-formed ipmpd replies to DSTIP with ICMP ids that are
                                      not the daemon's, as fast as this process can send them
"""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from icmp import checksum  # noqa: E402

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
MAGIC = 0x4950_4D50
# ipmpd's probe header: magic, version, checksum type, message type, ifindex, group, send time,
# kernel transmit time, tag.
HEADER = "!IBBHIIQQQ"
KERNEL_TX_OFFSET = 24


def packet_socket(iface: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    return s


def ipmpd_icmp(frame: bytes, icmp_type: int):
    """(ip header length, icmp offset) of an IPv4 ipmpd echo of `icmp_type`, else None."""
    if len(frame) < 34 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[23] != 1:
        return None
    icmp = 14 + ihl
    if len(frame) < icmp + 8 + 40 or frame[icmp] != icmp_type:
        return None
    if struct.unpack("!I", frame[icmp + 8 : icmp + 12])[0] != MAGIC:
        return None
    return ihl, icmp


def fix_ip_checksum(frame: bytearray, ihl: int) -> None:
    frame[24:26] = b"\0\0"
    frame[24:26] = struct.pack("!H", checksum(bytes(frame[14 : 14 + ihl])))


def fix_icmp_checksum(frame: bytearray, icmp: int) -> None:
    frame[icmp + 2 : icmp + 4] = b"\0\0"
    frame[icmp + 2 : icmp + 4] = struct.pack("!H", checksum(bytes(frame[icmp:])))


def record(iface: str, secs: float, path: str) -> dict:
    s = packet_socket(iface)
    s.settimeout(0.1)
    frames = []
    end = time.monotonic() + secs
    while time.monotonic() < end and len(frames) < 10_000:
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == PACKET_OUTGOING and ipmpd_icmp(frame, 0):
            frames.append(frame.hex())
    with open(path, "w") as f:
        f.write("\n".join(frames))
    return {"recorded": len(frames)}


def replay(iface: str, path: str, secs: float, src: str | None) -> dict:
    frames = []
    with open(path) as f:
        for line in f.read().split():
            frame = bytearray(bytes.fromhex(line))
            found = ipmpd_icmp(bytes(frame), 0)
            if found and src:
                frame[26:30] = socket.inet_aton(src)
                fix_ip_checksum(frame, found[0])
            frames.append(bytes(frame))
    if not frames:
        return {"replayed": 0}
    s = packet_socket(iface)
    sent = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        s.send(frames[sent % len(frames)])
        sent += 1
        time.sleep(0.0005)
    return {"replayed": sent, "distinct": len(frames)}


def reflect(iface: str, secs: float, how: str) -> dict:
    s = packet_socket(iface)
    s.settimeout(0.05)
    answered = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        found = ipmpd_icmp(frame, 8)
        if addr[2] == PACKET_OUTGOING or not found:
            continue
        ihl, icmp = found
        reply = bytearray(frame)
        reply[0:6], reply[6:12] = frame[6:12], frame[0:6]
        reply[26:30], reply[30:34] = frame[30:34], frame[26:30]
        reply[22] = 64
        fix_ip_checksum(reply, ihl)
        reply[icmp] = 0
        hdr = icmp + 8
        send_ns = struct.unpack("!Q", frame[hdr + 16 : hdr + 24])[0]
        tx = max(send_ns - 1_000_000_000, 1) if how == "past" else send_ns + 10_000_000_000
        reply[hdr + KERNEL_TX_OFFSET : hdr + KERNEL_TX_OFFSET + 8] = struct.pack("!Q", tx)
        fix_icmp_checksum(reply, icmp)
        s.send(bytes(reply))
        answered += 1
    return {"reflected": answered}


def flood(iface: str, dst_mac: str, dst_ip: str, secs: float) -> dict:
    mac = bytes.fromhex(dst_mac.replace(":", ""))
    frames = []
    for i in range(256):
        icmp_id = 0x9000 + i * 97
        body = struct.pack(HEADER, MAGIC, 1, 1, 1, 2, 0, 1, 2, 0xF00D)
        icmp = bytearray(struct.pack("!BBHHH", 0, 0, 0, icmp_id, i) + body)
        fix_icmp_checksum(icmp, 0)
        ip = bytearray(
            struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), i, 0, 64, 1, 0,
                        socket.inet_aton("192.0.2.1"), socket.inet_aton(dst_ip))
        )
        ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
        eth = mac + bytes.fromhex("02000000fa01") + struct.pack("!H", ETH_P_IP)
        frames.append(eth + bytes(ip) + bytes(icmp))
    s = packet_socket(iface)
    sent = 0
    start = time.monotonic()
    end = start + secs
    while True:
        for f in frames:
            try:
                s.send(f)
                sent += 1
            except OSError:
                # A full transmit queue: the point is to push as hard as it goes.
                pass
        if time.monotonic() >= end:
            break
    took = time.monotonic() - start
    return {"flooded": sent, "pps": round(sent / took)}


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "record":
        out = record(args[0], float(args[1]), args[2])
    elif mode == "replay":
        out = replay(args[0], args[1], float(args[2]), args[3] if len(args) > 3 else None)
    elif mode == "reflect":
        out = reflect(args[0], float(args[1]), args[2])
    elif mode == "flood":
        out = flood(args[0], args[1], args[2], float(args[3]))
    else:
        sys.exit(__doc__)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
