#!/usr/bin/env python3
"""
Lossy, slow, reordering and one-way links between the test's network namespaces, in user space.

What `tc qdisc add ... netem loss 5% delay 50ms 20ms reorder ...` does on a veth, for kernels that
have no sch_netem (this one, and any container without the module): each node's veth end in the
switch namespace is not on the bridge; this relay copies Ethernet frames between it and a second
veth pair whose other end is on the bridge, and applies per-(source, destination) IPv4 rules to
the frames a node sends: drop with a probability, delay by a base plus uniform jitter (which
reorders frames, as netem's jitter does), and send a fraction at once ahead of delayed ones
(netem's `reorder`). Everything else (ARP, frames towards a node, unmatched pairs) passes at once.

Usage (inside the switch namespace): impair.py relay OUTER:INNER[,OUTER:INNER...]
  then JSON lines on stdin: {"rules": [{"src": ip, "dst": ip, "loss": 0.05, "delayMs": 50,
  "jitterMs": 20, "reorder": 0.1}, ...]} replaces the rules; {"stats": true} prints a JSON line
  of counters per rule. "ready" is printed once the sockets are bound.
And (inside a node's namespace): impair.py offload-off IFACE... turns off checksum offload and
segmentation on veth ends whose frames the relay copies (a frame copied through a packet socket
must carry its final checksum and fit the MTU).
Bounded: at most 100 000 frames wait in the delay queue; beyond that frames are dropped (counted).
"""
import fcntl
import heapq
import json
import random
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
MAX_QUEUED = 100_000


def offload_off(ifaces):
    # ethtool's legacy ioctls (linux/ethtool.h): ETHTOOL_S{TXCSUM,SG,TSO,GSO,GRO}.
    import ctypes
    siocethtool = 0x8946
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for ifname in ifaces:
        for cmd in (0x17, 0x19, 0x1F, 0x24, 0x2C):
            buf = bytearray(struct.pack('II', cmd, 0))
            addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
            try:
                fcntl.ioctl(s.fileno(), siocethtool, struct.pack('16sP', ifname.encode(), addr))
            except OSError as e:
                print(f'{ifname}: ethtool 0x{cmd:x}: {e}', file=sys.stderr)
    print('ok', flush=True)


def relay(pairs):
    socks = {}
    egress = {}  # socket on the node side -> socket on the bridge side
    for pair in pairs:
        outer, inner = pair.split(':')
        a = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        a.bind((outer, 0))
        b = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        b.bind((inner, 0))
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setblocking(False)
        socks[a] = b
        socks[b] = a
        egress[a] = b
    rules = {}
    stats = {}
    queue = []  # (due, seq, socket, frame)
    seq = 0
    rng = random.Random(20)
    print('ready', flush=True)
    stdin = sys.stdin.buffer
    readers = list(socks) + [stdin]
    line = b''
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        ready, _, _ = select.select(readers, [], [], timeout)
        for s in ready:
            if s is stdin:
                chunk = stdin.read1(65536) if hasattr(stdin, 'read1') else stdin.readline()
                if not chunk:
                    return
                line += chunk
                while b'\n' in line:
                    cmd, line = line.split(b'\n', 1)
                    if not cmd.strip():
                        continue
                    msg = json.loads(cmd)
                    if 'rules' in msg:
                        rules = {(r['src'], r['dst']): r for r in msg['rules']}
                        stats = {f"{k[0]}>{k[1]}": {'frames': 0, 'dropped': 0, 'delayed': 0, 'ahead': 0} for k in rules}
                    if msg.get('stats'):
                        print(json.dumps({'stats': stats, 'queued': len(queue)}), flush=True)
                continue
            for _ in range(64):
                try:
                    frame, addr = s.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                out = socks[s]
                rule = None
                if s in egress and len(frame) >= 34 and frame[12:14] == b'\x08\x00':
                    rule = rules.get((socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])))
                if rule is None:
                    send(out, frame)
                    continue
                st = stats[f"{rule['src']}>{rule['dst']}"]
                st['frames'] += 1
                if rng.random() < rule.get('loss', 0):
                    st['dropped'] += 1
                    continue
                delay = rule.get('delayMs', 0) + rng.uniform(-1, 1) * rule.get('jitterMs', 0)
                if rng.random() < rule.get('reorder', 0):
                    st['ahead'] += 1
                    delay = 0
                if delay <= 0:
                    send(out, frame)
                    continue
                if len(queue) >= MAX_QUEUED:
                    st['dropped'] += 1
                    continue
                st['delayed'] += 1
                seq += 1
                heapq.heappush(queue, (time.monotonic() + delay / 1000.0, seq, out, frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            send(out, frame)


def send(sock, frame):
    try:
        sock.send(frame)
    except OSError:
        pass  # the interface went down (a test cuts a link): the frame is lost, as on a wire


if __name__ == '__main__':
    if sys.argv[1] == 'offload-off':
        offload_off(sys.argv[2:])
    elif sys.argv[1] == 'relay':
        relay(sys.argv[2].split(','))
    else:
        sys.exit(f'unknown mode {sys.argv[1]}')
