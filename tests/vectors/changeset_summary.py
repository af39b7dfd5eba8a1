#!/usr/bin/env python3
# Independent encoder of the set-summary golden vector
# (changeset_summary.exp), written from docs/protocol.md 2.10: protobuf by
# hand, BLAKE2b from hashlib, Ed25519 from `cryptography`.
#
# Input: the routed set of changeset_routes.exp (header, signature and
# changes; its BLAKE2b-256 is checked against that vector's set_blake2b256,
# so nothing here trusts the C encoder).  Output: the summary its header
# determines (bare header without fields 8, 9 and 13; the hash of the
# vector's field-9 entries), signed with the same key (seed 00 01 .. 1f);
# the set as a sealer of revision 2026-12 (summaries) writes it (fields 5
# and 6 appended); and the set in summary form carrying bucket 0 only
# (with the vector, field 8).
import hashlib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROUTES_SET = bytes.fromhex(
    '0ae80208011210a0a1a2a3a4a5a6a7a8a9aaabacadaeaf1a2003a107bff3ce10be1d70dd'
    '18e74bc09967e4d6309ba50d5f1ddc8664125531b82210101112131415161718191a1b1c'
    '1d1e1f280130034220293c2482817498b3933228c63016ecc6840f7530a2e9552ab9b15e'
    '17795ec8e04220ee74b74ccbde76867eabe558fe300b8c3a30cebb58a1531fca8adee950'
    'ef7fde4220b32a18708a575f3234ee9f075091642b5b71f112cd17c259c55481c9455e05'
    'b24a360a20303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e'
    '4f1210505152535455565758595a5b5c5d5e5f182a4a360a2003a107bff3ce10be1d70dd'
    '18e74bc09967e4d6309ba50d5f1ddc8664125531b81210101112131415161718191a1b1c'
    '1d1e1f18075085d0eab6b7336a110a066f7264657273120774616c6c696e6e6a110a066f'
    '72646572731a0774616c6c696e6e6a170a066f7264657273120774616c6c696e6e1a0472'
    '6967611240edc2bce22dffe146f2f038b516193f8cd1eda8b616d7f569106b6cd671a64d'
    'e7ca028cbfbce9d7bc5814300cb6d1d13ff2cd10a505b65bb55614dfc81ee108061a4608'
    '0110808080c0aadbddcd0122066f72646572732a036f2d313a140a046974656d120c2a0a'
    '626f6c7420c3b8204d383a0a0a0470616964120210013a090a03717479120218141a5408'
    '0210838084c0aadbddcd01180222066f72646572732a036f2d323a0b0a0564656c746112'
    '02180d3a0a0a046e6f7465120208013a120a05707269636512092100000000000004403a'
    '0a0a0472757368120210001a1b080310808088c0aadbddcd0122066f72646572732a036f'
    '2d313001')
ROUTES_SET_BLAKE2B256 = (
    '891348e094c4e34912dfa3c580907d402f9134c351e387739e4fcd0bd140a303')

def H(b): return hashlib.blake2b(b, digest_size=32).digest()

def varint(x):
    out = b''
    while True:
        b = x & 0x7f
        x >>= 7
        if x:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def rd_varint(b, i):
    x = s = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7f) << s
        s += 7
        if c < 0x80:
            return x, i

def fields(b):
    """(number, wire type, value bytes or int, raw bytes) of a message."""
    i = 0
    while i < len(b):
        st = i
        tag, i = rd_varint(b, i)
        if tag & 7 == 0:
            v, i = rd_varint(b, i)
        else:
            assert tag & 7 == 2
            n, i = rd_varint(b, i)
            v, i = b[i:i + n], i + n
        yield tag >> 3, v, b[st:i]

def ld(n, b): return varint(n << 3 | 2) + varint(len(b)) + b

assert H(ROUTES_SET).hex() == ROUTES_SET_BLAKE2B256, 'not the routes vector'
header = [v for n, v, _ in fields(ROUTES_SET) if n == 1][0]
changes = [v for n, v, _ in fields(ROUTES_SET) if n == 3]
hashes = [v for n, v, _ in fields(header) if n == 8]
routes = [v for n, v, _ in fields(header) if n == 13]
assert [H(c) for c in changes] == hashes
bare = b''.join(raw for n, _, raw in fields(header) if n not in (8, 9, 13))
seen = b''.join(raw for n, _, raw in fields(header) if n == 9)
# buckets: one per distinct Route (its exact bytes: canonical), in the
# order of their first change
order, members = [], {}
for i, r in enumerate(routes):
    if r not in members:
        order.append(r)
        members[r] = []
    members[r].append(i)
buckets = b''
for r in order:
    ix = members[r]
    bucket = (ld(1, r) + varint(2 << 3) + varint(len(ix)) +
              ld(3, H(b''.join(hashes[i] for i in ix))))
    buckets += ld(3, bucket)
summary = ld(1, H(header)) + ld(2, bare) + buckets + ld(4, H(seen))
sk = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
sig = sk.sign(b'branchsync/sum/v1\x00' + summary)
full = ROUTES_SET + ld(5, summary) + ld(6, sig)
# summary form, bucket 0: its changes, the summary, its signature, the
# packed list of buckets carried, and the header's vector (its field-9
# entries, which go with a bucket)
form = (b''.join(ld(3, changes[i]) for i in members[order[0]]) +
        ld(5, summary) + ld(6, sig) + ld(7, varint(0)) + ld(8, seen))
print('summary_blake2b256', H(summary).hex())
print('summary_signature', sig.hex())
print('set_blake2b256', H(full).hex())
print('form_blake2b256', H(form).hex())
