"""How often the near-copy check catches a reused document photo, and how often it would
match two different ones.

Makes `--photos` generated document pages (tests/test_images.py's `document_page`, one seed
each, as the tests' photos), hashes each through the real upload pipeline (`check_upload`,
the cleaned photo's 64-bit difference hash) and, for each edit a broker might make (JPEG
re-encoding, a trim off every side, brightening, in combinations), counts the photos whose
edited copy stays within `NEAR_DISTANCE` bits (caught: refused for another NIK). Then it
counts pairs of different pages within the distance (a false match would refuse an honest
applicant). The last line printed is JSON.

    python bench/photo_reuse.py --photos 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.images import NEAR_DISTANCE, CleanDocument, ImageRules, check_upload
from tests.test_hoard import edited
from tests.transcript import photo_bytes

# (JPEG quality, share trimmed off each side, brightness factor)
EDITS = {
    "re-encoded q70": (70, 0.0, 1.0),
    "re-encoded q60": (60, 0.0, 1.0),
    "trim 1% a side": (85, 0.01, 1.0),
    "10% brighter": (85, 0.0, 1.1),
    "q70, trim 1%, 10% brighter": (70, 0.01, 1.1),
    "q60, trim 1.5%, 20% brighter": (60, 0.015, 1.2),
    "trim 3% a side": (85, 0.03, 1.0),
}


def phash(data: bytes, rules: ImageRules) -> int:
    """The hash the upload pipeline stores for a photo."""
    checked = check_upload(data, rules)
    assert isinstance(checked, CleanDocument) and checked.phash is not None, checked
    return checked.phash


def main() -> int:
    """Measure and print; the last line is JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=200)
    args = parser.parse_args()
    rules = ImageRules()
    pages = [photo_bytes(f"doc_ktp:{n}") for n in range(args.photos)]
    hashes = [phash(page, rules) for page in pages]
    caught: dict[str, float] = {}
    for name, edit in EDITS.items():
        near = sum(
            (original ^ phash(edited(page, *edit), rules)).bit_count() <= NEAR_DISTANCE
            for page, original in zip(pages, hashes, strict=True)
        )
        caught[name] = round(near / args.photos, 3)
        print(f"{name}: {near} of {args.photos} caught", flush=True)
    pairs = list(itertools.combinations(hashes, 2))
    false = sum((a ^ b).bit_count() <= NEAR_DISTANCE for a, b in pairs)
    closest = min((a ^ b).bit_count() for a, b in pairs)
    print(f"different pages within {NEAR_DISTANCE} bits: {false} of {len(pairs)} pairs "
          f"(closest {closest} bits)")  # fmt: skip
    print(json.dumps({"photos": args.photos, "near_distance": NEAR_DISTANCE, "caught": caught,
                      "false_matches": false, "pairs": len(pairs),
                      "closest_different_bits": closest}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
