#!/usr/bin/env python3
# Independent encoder of the record-snapshot golden vector, written from
# docs/protocol.md 2.9 (protobuf by hand, Ed25519 from `cryptography`).
import hashlib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

def varint(x):
    out = b''
    while True:
        b = x & 0x7f
        x >>= 7
        if x:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def key(n, wt): return varint(n << 3 | wt)
def vint(n, x): return key(n, 0) + varint(x)
def ld(n, b): return key(n, 2) + varint(len(b)) + b

sk = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
inc = b'\x22' * 16
H = 1700000000000 << 16

def ver(hlc, seq, prio):
    return vint(1, hlc) + ld(2, pk) + ld(3, inc) + vint(4, seq) + vint(5, prio)

def zz(x): return (x << 1) ^ (x >> 63)

f_n = ld(1, b'n') + ld(2, vint(3, zz(-3) & (2**64 - 1))) + ld(3, ver(H, 3, 1))
f_office = ld(1, b'office') + ld(2, ld(5, b'tallinn')) + ld(3, ver(H + 1, 4, 1))
body = (vint(1, 1) + ld(2, b'\x11' * 16) + ld(3, pk) + ld(4, b'orders') +
        ld(5, b'o1') + ld(6, ver(H + 1, 4, 1)) + ld(8, f_n) + ld(8, f_office) +
        vint(9, 1700000000000))
sig = sk.sign(b'branchsync/snap/v1\x00' + body)
snap = ld(1, body) + ld(2, sig)
print('pk', pk.hex())
print('body_blake2b256', hashlib.blake2b(body, digest_size=32).hexdigest())
print('signature', sig.hex())
print('snapshot', snap.hex())
print('snapshot_blake2b256', hashlib.blake2b(snap, digest_size=32).hexdigest())
print('len', len(body), len(snap))
