#!/usr/bin/env python3
# Independent encoder of the version-2 snapshot-batch golden vector,
# written from docs/protocol.md 2.9, 2.11 and 2.12 (protobuf by hand,
# BLAKE2b-256 from hashlib, Ed25519 from `cryptography`).  Prints
# tests/vectors/snapbatch_v2.exp's values.
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

# a version by writer number 1 (the header's writers[0]: pk || inc)
def ver2(hlc, seq, prio):
    return vint(1, hlc) + vint(4, seq) + vint(5, prio) + vint(6, 1)

def zz(x): return (x << 1) ^ (x >> 63)

# body 1: snapshot_v1.py's record orders/o1 as version 2: no infobase,
# hub or created_ms; field `office`'s version is the record's alive, so
# it is left out
f_n = ld(1, b'n') + ld(2, vint(3, zz(-3) & (2**64 - 1))) + ld(3, ver2(HLC, 3, 1))
f_office = ld(1, b'office') + ld(2, ld(5, b'tallinn'))
body1 = (vint(1, 2) + ld(4, b'orders') + ld(5, b'o1') +
         ld(6, ver2(HLC + 1, 4, 1)) + ld(8, f_n) + ld(8, f_office))
# body 2: the `done` marker of want (orders, ""), covering the hub's
# stream up to seq 4 (a StreamPos keeps its full key)
body2 = (vint(1, 2) + ld(4, b'orders') + vint(10, 1) +
         ld(11, ld(1, pk) + ld(2, inc) + vint(3, 4)))
bodies = ld(3, body1) + ld(3, body2)   # SnapBatch's field-3 entries
header = (vint(1, 2) + ld(2, ib) + ld(3, pk) + vint(4, T) +
          ld(6, pk + inc) + ld(7, H(bodies)))
sig = sk.sign(b'branchsync/snapbatch/v1\x00' + header)
batch = ld(1, header) + ld(2, sig) + bodies
print('pk', pk.hex())
print('body1', body1.hex())
print('body2', body2.hex())
print('bodies_blake2b256', H(bodies).hex())
print('header', header.hex())
print('signature', sig.hex())
print('batch', batch.hex())
print('batch_blake2b256', H(batch).hex())
print('len', len(body1), len(body2), len(header), len(batch))
