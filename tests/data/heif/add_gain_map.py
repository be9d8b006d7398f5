"""Write a copy of a HEIC or AVIF file with an HDR gain map item, as phones write them; what jcd's tests read.

    python add_gain_map.py IN OUT           # Apple's (iPhone 12 to 15): an auxiliary image whose auxC property
                                            # names urn:com:apple:photo:2020:aux:hdrgainmap, linked to the primary
                                            # by an auxl reference; its picture is the primary's own coded one
    python add_gain_map.py IN OUT --iso     # ISO 21496-1's as well: a hidden tmap item deriving the HDR rendition
                                            # from the primary and that gain map (dimg), without a body of its own
    python add_gain_map.py IN OUT URN...    # auxiliary images of those auxC URNs instead (depth maps, portrait
                                            # mattes: what an iPhone's portrait photo holds), in that order

Only the layouts of tests/data/heif/phone.heic and tests/data/avif/deep-10.avif are handled (iloc version 0
with 4-byte offsets and lengths, with or without 4-byte base offsets; ipma version 0): the container is rebuilt
box by box and every offset into the data moved by what meta grew.
"""

import struct
import sys

URN = b"urn:com:apple:photo:2020:aux:hdrgainmap\0"


def boxes(data):
    at, out = 0, []
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        out.append((kind, data[at + 8 : at + size]))
        at += size
    return out


def box(kind, body):
    return struct.pack(">I4s", 8 + len(body), kind) + body


def infe(item, kind):
    return box(b"infe", bytes([2, 0, 0, 1]) + struct.pack(">HH4s", item, 0, kind) + b"\0")  # hidden


def main(src, dst, iso=False, urns=(URN,)):
    data = open(src, "rb").read()
    top = boxes(data)
    old_meta = dict(top)[b"meta"]
    meta = dict(boxes(old_meta[4:]))
    order = [k for k, _ in boxes(old_meta[4:])] + ([b"iref"] if b"iref" not in meta else [])
    primary = struct.unpack_from(">H", meta[b"pitm"], 4)[0]
    iinf = meta[b"iinf"]
    count = struct.unpack_from(">H", iinf, 4)[0]
    gain = 1 + max(struct.unpack_from(">H", b, 4)[0] for _, b in boxes(iinf[6:]))
    aux = list(range(gain, gain + len(urns)))  # the auxiliary images' items; the first is the gain map's
    added = b"".join(infe(i, b"hvc1" if b"hvc1" in iinf else b"av01") for i in aux)
    added += infe(aux[-1] + 1, b"tmap") if iso else b""
    meta[b"iinf"] = iinf[:4] + struct.pack(">H", count + len(aux) + iso) + iinf[6:] + added
    # the gain map's picture: the primary's own coded data
    loc = meta[b"iloc"]
    assert loc[0] == 0 and loc[4:6] in (b"\x44\x40", b"\x44\x00"), "iloc layout not handled"
    base = 4 if loc[5] else 0  # bytes of base offset: moved when there is one, else each extent's offset
    at, entries = 8, []
    for _ in range(struct.unpack_from(">H", loc, 6)[0]):
        size = 6 + base + 8 * struct.unpack_from(">H", loc, at + 4 + base)[0]
        entries.append(loc[at : at + size])
        at += size
    mine = next(e for e in entries if struct.unpack_from(">H", e)[0] == primary)
    entries += [struct.pack(">H", i) + mine[2:] for i in aux]
    # their properties: the primary's coded-picture configuration, size and bits, and each one's auxC
    iprp = dict(boxes(meta[b"iprp"]))
    ipco = boxes(iprp[b"ipco"])
    pick = [i + 1 for i, (k, _) in enumerate(ipco) if k in (b"hvcC", b"av1C", b"ispe", b"pixi")]
    ipco += [(b"auxC", bytes(4) + urn) for urn in urns]
    ma = iprp[b"ipma"]
    assert ma[:4] == bytes(4), "ipma layout not handled"
    ma = ma[:4] + struct.pack(">I", struct.unpack_from(">I", ma, 4)[0] + len(aux)) + ma[8:]
    for k, i in enumerate(aux):
        ma += struct.pack(">HB", i, len(pick) + 1) + bytes([0x80 | j for j in pick] + [len(ipco) - len(aux) + k + 1])
    meta[b"iprp"] = box(b"ipco", b"".join(box(k, b) for k, b in ipco)) + box(b"ipma", ma)
    refs = b"".join(box(b"auxl", struct.pack(">HHH", i, 1, primary)) for i in aux)
    if iso:
        refs += box(b"dimg", struct.pack(">HHHH", aux[-1] + 1, 2, primary, gain))
    meta[b"iref"] = meta.get(b"iref", bytes(4)) + refs

    def build(delta):
        def move(e):
            if base:
                return e[:4] + struct.pack(">I", struct.unpack_from(">I", e, 4)[0] + delta) + e[8:]
            out = bytearray(e)
            for at in range(6, len(e), 8):
                struct.pack_into(">I", out, at, struct.unpack_from(">I", e, at)[0] + delta)
            return bytes(out)

        moved = [move(e) for e in entries]
        meta[b"iloc"] = loc[:6] + struct.pack(">H", len(entries)) + b"".join(moved)
        return box(b"meta", old_meta[:4] + b"".join(box(k, meta[k]) for k in order))

    delta = len(build(0)) - 8 - len(old_meta)
    out = b"".join(build(delta) if k == b"meta" else box(k, b) for k, b in top)
    assert [k for k, _ in top].index(b"meta") < [k for k, _ in top].index(b"mdat")
    open(dst, "wb").write(out)


if __name__ == "__main__":
    urns = [a.encode() + b"\0" for a in sys.argv[3:] if a != "--iso"]
    main(sys.argv[1], sys.argv[2], "--iso" in sys.argv[3:], urns or (URN,))
