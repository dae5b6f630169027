# Sourced by bin/fswl and bin/test: make or refresh this checkout's .venv.
# ensure_venv EXTRAS installs the package (editable) with those extras once,
# and again only when setup.cfg or the extras change.

fswl_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fswl_venv="$fswl_root/.venv"

find_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "fswl: needs Python 3.11 or newer (for tomllib); install python3" >&2
    return 1
}

ensure_venv() {
    local extras="$1" stamp want
    if [ ! -x "$fswl_venv/bin/python" ]; then
        "$(find_python)" -m venv "$fswl_venv" ||
            { echo "fswl: cannot make $fswl_venv (on Debian: apt-get install python3-venv)" >&2; return 1; }
    fi
    stamp="$fswl_venv/.fswl-installed"
    want="$(cat "$fswl_root/setup.cfg" "$fswl_root/pyproject.toml" | sha256sum | cut -c1-16) [$extras]"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        local spec="$fswl_root"
        [ -n "$extras" ] && spec="$fswl_root[$extras]"
        "$fswl_venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || true
        "$fswl_venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >&2 ||
            { echo "fswl: installing into $fswl_venv failed (see above)" >&2; return 1; }
        echo "$want" >"$stamp"
    fi
}
