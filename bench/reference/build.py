"""Compile and run the C reference programs in bench/reference/.

The references are compiled only by benchmarks, never needed by the tool:
    binary = compile_c(Path("bench/reference/fma.c"), extra_flags=["-fopenmp"])
    result = run_reference(binary, ["avx2", "float32", "1"], env={"OMP_NUM_THREADS": "1"})
    avx2_only = compile_c(Path("bench/reference/sweep.c"), extra_flags=["-fopenmp"], march="haswell")
A reference prints "key=value" lines; run_reference returns them as a dict, with values
converted to int or float where they parse as one.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_DIR = HERE / "build"
BASE_FLAGS = ("-O3",)


def compile_c(source: Path, extra_flags=(), output: Path | None = None, march: str = "native",
              assembly: bool = False) -> Path:
    """gcc -O3 -march=MARCH [extra_flags] source -lm -> bench/reference/build/<stem>, or
    <stem>-<march> for a -march other than native (march="haswell": the AVX2-only build,
    no AVX-512 whatever the host has). assembly=True writes `gcc -S` output instead
    (<name>.s), to read the hot loops. Recompiles only when the source or the flags
    changed; returns the path written."""
    source = Path(source).resolve()
    flags = [*BASE_FLAGS, f"-march={march}", *extra_flags]
    name = source.stem if march == "native" else f"{source.stem}-{march}"
    binary = Path(output) if output else BUILD_DIR / (name + (".s" if assembly else ""))
    binary.parent.mkdir(parents=True, exist_ok=True)
    stamp = binary.with_name(binary.name + ".flags")
    command = [os.environ.get("CC", "gcc"), *flags, *(["-S"] if assembly else []), str(source),
               "-o", str(binary), *([] if assembly else ["-lm"])]
    if (binary.exists() and stamp.exists() and stamp.read_text() == " ".join(command)
            and binary.stat().st_mtime >= source.stat().st_mtime):
        return binary
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    stamp.write_text(" ".join(command))
    return binary


def _value(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_key_values(text: str) -> dict:
    """{key: value} from the lines of `text` that look like key=value."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = _value(value.strip())
    return out


def run_reference(binary, args=(), env: dict | None = None, timeout: float = 120.0) -> dict:
    """Runs a compiled reference with `args` (environment: os.environ updated by `env`),
    and returns its key=value output lines as a dict. Raises if it exits non-zero."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{binary} {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr}")
    return parse_key_values(done.stdout)


if __name__ == "__main__":  # python bench/reference/build.py fma.c [-fopenmp] -- args...
    import sys

    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    src, *flags = argv[:split]
    print(run_reference(compile_c(HERE / src, flags), argv[split + 1:]))
