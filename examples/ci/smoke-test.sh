#!/bin/sh
# Smoke tests of a repository, run in the CI pod (examples/ci/job.yaml) from
# the workspace's root: each check is a test case of a JUnit XML report
# written to $REPORT; the exit code is 1 if any failed.
#   REQUIRED_FILES  files that must exist (space-separated)
#   REPORT          where the report goes (default target/pod1-ci/junit.xml)
set -u
report=${REPORT:-target/pod1-ci/junit.xml}
cases=""
tests=0
failures=0

# XML-escapes stdin.
escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }

# check NAME COMMAND...: runs COMMAND, records a test case.
check() {
    name=$1; shift
    tests=$((tests + 1))
    start=$(date +%s)
    if out=$("$@" 2>&1); then
        echo "ok   $name"
        body=""
    else
        echo "FAIL $name"
        echo "$out" | sed 's/^/     /'
        failures=$((failures + 1))
        body="<failure message=\"$(echo "$name failed" | escape)\">$(echo "$out" | escape)</failure>"
    fi
    took=$(($(date +%s) - start))
    cases="$cases    <testcase classname=\"smoke\" name=\"$(echo "$name" | escape)\" time=\"$took\">$body</testcase>
"
}

scripts_have_a_shebang() {
    for f in scripts/*.sh; do
        head -n 1 "$f" | grep -q '^#!' || { echo "$f: no #! line"; return 1; }
    done
}

examples_name_their_kind() {
    for f in examples/*/*.yaml examples/*/*.json; do
        grep -q '"*kind"*:' "$f" || { echo "$f: no kind"; return 1; }
    done
}

no_conflict_markers() {
    ! grep -ln '^<<<<<<< ' ./*.md scripts/* examples/*/*
}

for f in ${REQUIRED_FILES:-}; do
    check "required file $f" test -f "$f"
done
check "scripts start with #!" scripts_have_a_shebang
check "examples name their kind" examples_name_their_kind
check "no merge conflict markers" no_conflict_markers

mkdir -p "$(dirname "$report")"
{
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<testsuites tests=\"$tests\" failures=\"$failures\">"
    echo "  <testsuite name=\"smoke\" tests=\"$tests\" failures=\"$failures\" errors=\"0\">"
    printf '%s' "$cases"
    echo "  </testsuite>"
    echo "</testsuites>"
} > "$report"
echo "$tests tests, $failures failed; report: $report"
[ "$failures" -eq 0 ]
