#!/usr/bin/env bash
# Build llama.cpp from the source distribution of the PyPI package `llama-cpp-python`.
#
#   bash scripts/llamacpp/build.sh
#
# Result (all under target/llamacpp/, which git ignores):
#   src/                 the unpacked sdist (llama_cpp Python package + vendor/llama.cpp)
#   build/bin/           libllama.so, libggml*.so, llama-bench, llama-cli, llama-batched-bench,
#                        llama-server, llama-quantize
#   env.sh               `source` it to get PYTHONPATH / LLAMA_CPP_LIB_PATH for the Python binding
#                        and LLAMA_BIN for the tools.
# The Python binding is used straight from the sdist with the shared library built here, so the
# binding and the tools share one build of ggml. Set LLAMA_CPP_PYTHON_VERSION to pin another release,
# JOBS to change the build parallelism. Re-running skips finished steps.
#
#   LLAMACPP_ISA=avx2 bash scripts/llamacpp/build.sh
#
# builds only llama-bench and llama-batched-bench for AVX2 (-DGGML_NATIVE=OFF: AVX, AVX2, BMI2,
# FMA, F16C; no AVX-512, no AMX) into build-avx2/, with env-avx2.sh: to compare our AVX2 kernels
# (LFM_NO_AVX512=1) with llama.cpp's on a CPU that has more (`bench/compare-batch.sh --avx2`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
work="$root/target/llamacpp"
mkdir -p "$work"
cd "$work"

py="${PYTHON:-python3}"
if [[ ! -x "$work/venv/bin/python" ]]; then
    "$py" -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet --upgrade pip
    # cmake/ninja build llama.cpp; numpy, typing-extensions, diskcache, jinja2 are the binding's deps;
    # pyyaml lets the vendored gguf-py (fixture recorder) import.
    "$work/venv/bin/pip" install --quiet cmake ninja numpy typing-extensions diskcache jinja2 pyyaml
fi

if [[ ! -d src ]]; then
    "$work/venv/bin/pip" download --quiet "llama-cpp-python==$version" --no-deps \
        --no-binary llama-cpp-python -d sdist
    mkdir -p src
    tar xzf "sdist/llama_cpp_python-$version.tar.gz" -C src --strip-components=1
fi

# AMX: ggml's AMX path crashes on machines whose CPU reports AMX but whose OS or hypervisor
# does not enable it (seen on the 2-core CI machines), and -march=native turns it on. It only
# ever serves prefill of some quant types, so it is switched off for a fair, working build.
extra=""
if grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
    extra="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
case "${LLAMACPP_ISA:-native}" in
    native) ;;
    avx2)
        export PATH="$work/venv/bin:$PATH"
        if [[ ! -x build-avx2/bin/llama-batched-bench ]]; then
            cmake -S src/vendor/llama.cpp -B build-avx2 -G Ninja \
                -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF \
                -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
                -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF
            cmake --build build-avx2 -j "${JOBS:-$(nproc)}" --target llama-bench llama-batched-bench
        fi
        cat > env-avx2.sh <<ENV
export LLAMA_BIN="$work/build-avx2/bin"
export LLAMA_PY="$work/venv/bin/python"
ENV
        echo "llama.cpp for AVX2 built in $work/build-avx2/bin"
        exit 0
        ;;
    *) echo "LLAMACPP_ISA: native or avx2, not '$LLAMACPP_ISA'" >&2; exit 2 ;;
esac
if [[ ! -x build/bin/llama-quantize ]] || [[ "$(cat build/.flags 2>/dev/null)" != "$extra" ]]; then
    export PATH="$work/venv/bin:$PATH"
    cmake -S src/vendor/llama.cpp -B build -G Ninja \
        -DCMAKE_C_FLAGS="$extra" -DCMAKE_CXX_FLAGS="$extra" \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_OPENSSL=OFF
    cmake --build build -j "${JOBS:-$(nproc)}" \
        --target llama llama-bench llama-cli llama-batched-bench llama-server llama-quantize
    echo "$extra" > build/.flags
fi

cat > env.sh <<ENV
export PYTHONPATH="$work/src\${PYTHONPATH:+:\$PYTHONPATH}"
export LLAMA_CPP_LIB_PATH="$work/build/bin"
export LLAMA_BIN="$work/build/bin"
export LLAMA_PY="$work/venv/bin/python"
ENV
echo "llama.cpp $(cd src/vendor/llama.cpp && git describe --tags 2>/dev/null || echo "from llama-cpp-python $version") built in $work/build/bin"
