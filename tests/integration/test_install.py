"""The Makefile as a newcomer and a packager meet it: a user's CFLAGS that
keep the project's required flags, and a machine without the libraries
told to run `make deps`."""
import re
import subprocess

from conftest import ROOT, clean_env


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
