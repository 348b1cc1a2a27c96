"""Whether result files hold the same bits: every dataset of REF (cka.h5,
its groups included) is in each OUT with the same type, shape and bytes, and
OUT has no other. Attributes (seconds, ranks, segments) are not compared.
    same_bits.py REF OUT [OUT...]
Prints what differs and exits 1; exits 0 when all are the same."""
import sys

import h5py
import numpy as np


def datasets(path):
    """{name: (dtype, shape, bytes)} of every dataset in the file at path."""
    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            data = obj[()]
            if obj.dtype.kind == "O":  # variable-length strings: their text
                raw = "\0".join(v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(data)).encode()
            else:
                raw = np.ascontiguousarray(data).tobytes()
            found[name] = (str(obj.dtype), obj.shape, raw)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


def differences(ref, out):
    """What differs between the datasets of two files, one line each."""
    a, b = datasets(ref), datasets(out)
    lines = [f"{out}: no dataset {n}" for n in sorted(set(a) - set(b))]
    lines += [f"{out}: extra dataset {n}" for n in sorted(set(b) - set(a))]
    for n in sorted(set(a) & set(b)):
        if a[n][:2] != b[n][:2]:
            lines.append(f"{out}: {n} is {b[n][0]} {b[n][1]}, {ref} has {a[n][0]} {a[n][1]}")
        elif a[n][2] != b[n][2]:
            lines.append(f"{out}: {n} differs in its bits from {ref}")
    if not a:
        lines.append(f"{ref}: no datasets")
    return lines


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    lines = []
    for out in argv[2:]:
        try:
            lines += differences(argv[1], out)
        except OSError as e:
            lines.append(f"cannot read: {e}")
    for line in lines:
        print(line)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
