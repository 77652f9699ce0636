#!/bin/sh
# make check: unit test programs (cmocka), then the integration suite
# against real servers on loopback.  Ends with one "N passed, N failed".
set -u
upass=0; ufail=0
for t in "$@"; do
	if "$t"; then upass=$((upass + 1)); else ufail=$((ufail + 1)); echo "FAILED: $t" >&2; fi
done
echo "unit programs: $upass passed, $ufail failed"
ipass=0; ifail=0
out=$(mktemp)
/usr/bin/python3 tests/integration/run.py 2>&1 | tee "$out"
ist=$(tail -n 1 "$out" | sed -n 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p')
rm -f "$out"
if [ -n "$ist" ]; then
	ipass=${ist% *}; ifail=${ist#* }
else
	ifail=1
	echo "integration suite did not finish" >&2
fi
echo "$((upass + ipass)) passed, $((ufail + ifail)) failed"
[ "$ufail" -eq 0 ] && [ "$ifail" -eq 0 ]
