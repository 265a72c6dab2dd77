"""The Makefile as a newcomer and a packager meet it: `make install` and
`make uninstall` under a DESTDIR, the installed manual page and bash
completion, a user's CFLAGS that keep the project's required flags, and a
machine without the libraries told to run `make deps`."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, clean_env

PREFIX = "/usr/local"
INSTALLED = ["bin/hopper", "bin/hopper-thumbnail", "share/man/man1/hopper.1",
             "share/bash-completion/completions/hopper"]


def make_env(**extra):
    """The environment for a make of our own: none of the MAKEFLAGS of a
    `make test` that may be running this (they would pass SANITIZE and
    WERROR on), plus extra."""
    env = clean_env(**extra)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    return env


def make(*args, env=None, timeout=900):
    p = subprocess.run(["make", "-C", str(ROOT), "--no-print-directory",
                        *map(str, args)], capture_output=True, text=True,
                       env=env or make_env(), timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")
                  if p.is_file() or p.is_symlink())


def complete(dest, line):
    """What the installed completion offers for line (the cursor at its
    end), from a bash that sourced it and has the installed hopper first on
    PATH; also returns `complete -p hopper`."""
    script = f"""
        source {dest}{PREFIX}/share/bash-completion/completions/hopper
        complete -p hopper
        COMP_LINE='{line}'
        COMP_POINT=${{#COMP_LINE}}
        read -ra COMP_WORDS <<<"$COMP_LINE"
        [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
        COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
        _hopper
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    env = clean_env(PATH=f"{dest}{PREFIX}/bin:{os.environ['PATH']}")
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    spec, *offered = p.stdout.splitlines()
    return spec, offered


def check_manual(page):
    """The page renders with no warning, through man if there is one, else
    groff or mandoc; skipped only when none of them is installed."""
    if shutil.which("man"):
        env = clean_env(MANWIDTH="80", MANPAGER="cat", PAGER="cat",
                        LC_ALL="C.UTF-8")
        p = subprocess.run(["man", "--warnings", "-l", str(page)],
                           capture_output=True, text=True, env=env,
                           timeout=60)
    elif shutil.which("groff"):
        p = subprocess.run(["groff", "-man", "-ww", "-z", str(page)],
                           capture_output=True, text=True, timeout=60)
    elif shutil.which("mandoc"):
        p = subprocess.run(["mandoc", "-T", "lint", "-W", "warning",
                            str(page)], capture_output=True, text=True,
                           timeout=60)
    else:
        return None
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", p.stderr
    return p.stdout


def test_install_then_uninstall_under_destdir(tmp):
    hopper_bin, thumb_bin = BUILD / "hopper", BUILD / "hopper-thumbnail"
    assert thumb_bin.exists(), "hopper-thumbnail is not built: run make"
    dest = tmp / "dest"
    # Someone else's file in the same bin folder: uninstall leaves it.
    (dest / "usr/local/bin").mkdir(parents=True)
    (dest / "usr/local/bin/other").write_text("not ours\n")
    # -o: install the binaries under test as they are, never rebuilt here
    # (a sanitizer build would be rebuilt without its flags).
    code, out, err = make("install", f"BUILD={BUILD}", f"DESTDIR={dest}",
                          f"PREFIX={PREFIX}", "-o", hopper_bin, "-o",
                          thumb_bin)
    assert code == 0, out + err
    root = dest / PREFIX.lstrip("/")
    assert files_under(root) == sorted(INSTALLED + ["bin/other"])
    for exe in ("hopper", "hopper-thumbnail"):
        assert os.access(root / "bin" / exe, os.X_OK), exe

    p = subprocess.run([root / "bin/hopper", "--version"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and re.fullmatch(r"hopper \S+\n", p.stdout), \
        p.stdout + p.stderr
    # The page names the version it documents: bumped with HOP_VERSION.
    th = (root / "share/man/man1/hopper.1").read_text().split("\n.TH ")[1]
    assert f'"{p.stdout.strip()}"' in th.splitlines()[0], th.splitlines()[0]
    p = subprocess.run([root / "bin/hopper", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "hopper run" in p.stdout, p.stderr

    text = check_manual(root / "share/man/man1/hopper.1")
    if text is not None and shutil.which("man"):
        assert "hopper - run a worker over every item of a queue" in text
        assert "--workers" in text.replace("\u2010", "-"), text[:2000]

    spec, offered = complete(dest, "hopper ru")
    assert spec == "complete -F _hopper hopper"
    assert offered == ["run"]
    assert complete(dest, "hopper run --wor")[1] == ["--workers"]
    assert complete(dest, "hopper gra")[1] == ["graph"]
    assert complete(dest, "hopper graph p.json --format ")[1] == [
        "text", "dot", "mermaid"]
    assert complete(dest, "hopper graph p.json --for")[1] == ["--format"]
    schemes = complete(dest, "hopper run -s ")[1]
    assert {"jsonl:", "dir:", "postgres://", "kafka://"} <= set(schemes), \
        schemes

    code, out, err = make("uninstall", f"DESTDIR={dest}", f"PREFIX={PREFIX}")
    assert code == 0, out + err
    assert files_under(dest) == ["usr/local/bin/other"]


def test_user_cflags_keep_the_required_flags(tmp):
    build = tmp / "build"
    targets = [build / "hopper", build / "hopper-thumbnail",
               build / "examples/c/word_count"]
    code, out, err = make("-j2", f"BUILD={build}", "CFLAGS=-O0", *targets)
    assert code == 0, (out + err)[-4000:]
    compiles = [line for line in out.splitlines()
                if re.search(r" -c -o \S+\.o \S+\.c$", line)]
    # The coordinator, the drivers, the worker helper and the thumbnail
    # worker: every compile line.
    assert len(compiles) >= 40, out[-4000:]
    for line in compiles:
        words = line.split()
        for flag in ("-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-MMD",
                     "-I.", "-O0"):
            assert flag in words, f"{flag} missing: {line}"
        assert "-O2" not in words, line
    assert any("worker/thumbnail/" in c for c in compiles)
    assert list(build.rglob("*.d")), "no header dependencies written"
    p = subprocess.run([build / "hopper", "--version"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr

    # The benchmark helpers take the same flags (a dry run: nothing built).
    code, out, err = make("-n", f"BUILD={build}", "CFLAGS=-O0", "bench-bin")
    assert code == 0, out + err
    lines = [line for line in out.replace("\\\n", " ").splitlines()
             if "bench/" in line and ".c" in line]
    assert lines, out
    for line in lines:
        assert "-std=c11" in line.split() and "-O0" in line.split(), line


def no_pkg_config_env(tmp):
    """pkg-config finds nothing: a machine without the libraries."""
    empty = tmp / "no-pc"
    empty.mkdir()
    return make_env(PKG_CONFIG_PATH=empty, PKG_CONFIG_LIBDIR="")


def test_missing_library_says_make_deps(tmp):
    env = no_pkg_config_env(tmp)
    build = tmp / "build"
    code, out, err = make(f"BUILD={build}", env=env)
    assert code != 0
    assert "make deps" in err, err
    for pkg in ("jansson", "libpq", "rdkafka", "libmicrohttpd", "libavformat"):
        assert re.search(rf"\b{pkg}\b", err), err
    assert "No such file or directory" not in err, err
    assert "was not found" not in out + err, err
    assert not build.exists(), "make compiled before it stopped"


def test_demo_installs_before_any_pkg_config_noise(tmp):
    # A dry run: the deps line is printed, not run; the sub-make that
    # would build then stops at the missing libraries.
    code, out, err = make("-n", "demo", f"BUILD={tmp / 'build'}",
                          env=no_pkg_config_env(tmp))
    assert out.splitlines()[0] == "bash tests/deps.sh demo", out
    assert "was not found" not in out + err, out + err
    assert "make deps" in err, err


def deps_check(tmp, purpose):
    """tests/deps.sh --check PURPOSE on a machine that has nothing: no
    program on PATH, no library for pkg-config. Returns the Debian packages
    it names."""
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    p = subprocess.run(["/bin/bash", str(ROOT / "tests/deps.sh"), "--check",
                        purpose], capture_output=True, text=True, timeout=60,
                       env=clean_env(PATH=empty, PKG_CONFIG_PATH=empty,
                                     PKG_CONFIG_LIBDIR=""))
    assert p.returncode == 1, p.stdout + p.stderr
    m = re.search(r"^deps: Debian and Ubuntu packages: (.*)$", p.stderr,
                  re.M)
    assert m, p.stderr
    return set(m[1].split())


def test_demo_needs_no_test_tools(tmp):
    build = {"build-essential", "pkg-config", "libjansson-dev", "libpq-dev",
             "librdkafka-dev", "libmicrohttpd-dev", "libjemalloc-dev",
             "libavformat-dev", "libavcodec-dev", "libswscale-dev",
             "libavutil-dev", "libyaml-dev", "libcurl4-openssl-dev"}
    tools = {"chromium", "prometheus", "shellcheck", "clang-format", "kcat",
             "parallel", "libcmocka-dev"}
    assert deps_check(tmp, "build") == build | {"make"}
    demo = deps_check(tmp, "demo")
    assert demo == build | {"make", "ffmpeg", "python3"}
    test = deps_check(tmp, "test")
    assert (tools - {"parallel"}) <= test and demo <= test, test
