#!/usr/bin/env python3
# Independent encoder of the snapshot-batch golden vector, written from
# docs/protocol.md 2.9 and 2.11 (protobuf by hand, BLAKE2b-256 from
# hashlib, Ed25519 from `cryptography`).  Prints tests/vectors/
# snapbatch_v1.exp's values.
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
def H(b): return hashlib.blake2b(b, digest_size=32).digest()

sk = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
ib = b'\x11' * 16
inc = b'\x22' * 16
T = 1700000000000
HLC = T << 16

def ver(hlc, seq, prio):
    return vint(1, hlc) + ld(2, pk) + ld(3, inc) + vint(4, seq) + vint(5, prio)

def zz(x): return (x << 1) ^ (x >> 63)

# body 1: snapshot_v1.py's record orders/o1
f_n = ld(1, b'n') + ld(2, vint(3, zz(-3) & (2**64 - 1))) + ld(3, ver(HLC, 3, 1))
f_office = ld(1, b'office') + ld(2, ld(5, b'tallinn')) + ld(3, ver(HLC + 1, 4, 1))
body1 = (vint(1, 1) + ld(2, ib) + ld(3, pk) + ld(4, b'orders') +
         ld(5, b'o1') + ld(6, ver(HLC + 1, 4, 1)) + ld(8, f_n) +
         ld(8, f_office) + vint(9, T))
# body 2: the `done` marker of want (orders, ""), covering the hub's
# stream up to seq 4
body2 = (vint(1, 1) + ld(2, ib) + ld(3, pk) + ld(4, b'orders') +
         vint(9, T) + vint(10, 1) + ld(11, ld(1, pk) + ld(2, inc) + vint(3, 4)))
header = (vint(1, 1) + ld(2, ib) + ld(3, pk) + vint(4, T) +
          ld(5, H(body1)) + ld(5, H(body2)))
sig = sk.sign(b'branchsync/snapbatch/v1\x00' + header)
batch = ld(1, header) + ld(2, sig) + ld(3, body1) + ld(3, body2)
print('pk', pk.hex())
print('body1_blake2b256', H(body1).hex())
print('body2_blake2b256', H(body2).hex())
print('header', header.hex())
print('signature', sig.hex())
print('batch', batch.hex())
print('batch_blake2b256', H(batch).hex())
print('len', len(header), len(batch))
# the seed marker (2.9 field 12, revision 2026-12 (bootstrap)): done, seed,
# collection and id empty, covered the hub's stream up to seq 4
marker = (vint(1, 1) + ld(2, ib) + ld(3, pk) + vint(9, T) + vint(10, 1) +
          ld(11, ld(1, pk) + ld(2, inc) + vint(3, 4)) + vint(12, 1))
print('seed_marker_body', marker.hex())
print('seed_marker_blake2b256', H(marker).hex())
