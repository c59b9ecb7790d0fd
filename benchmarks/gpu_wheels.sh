#!/usr/bin/env bash
# Wheels that benchmarks/gpu_seed_set.py needs on the lent GPU machine and that its image lacks (it has
# torch, transformers, tokenizers, safetensors, huggingface-hub, numpy, pandas, pyarrow, matplotlib, jinja2,
# tqdm, pytest, ...; nothing can be fetched there). The list is this project's dependency closure (pinned as
# constraints.txt resolved here) minus the image's packages as listed on 2026-11-17; Python 3.12, x86-64.
# Downloads into .whl/ (ignored by git: `echo /.whl/ >> .git/info/exclude`), about 50 MB.
# Then, on the device machine (carry .whl):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && python3 -m benchmarks.gpu_seed_set --out $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(
  annotated-types==0.8.0 babe==0.0.7 beartype==0.23.1 better-abc==0.0.3 config2py==0.1.76 cwevals==0.0.1b1
  datasets==5.2.0 defusedxml==0.7.1 dill==0.4.1 distro==1.9.0 docstring-parser==0.18.0 dol==0.3.100
  fancy-einsum==0.0.3 googleapis-common-protos==1.76.0 graze==0.1.46 httpcore2==2.16.2 httpx2==2.16.2
  i2==0.1.91 importlib-resources==7.1.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  multiprocess==0.70.19 nltk==3.10.4 opentelemetry-api==1.45.2 opentelemetry-exporter-http-transport==0.66b2
  opentelemetry-exporter-otlp-common==0.66b2 opentelemetry-exporter-otlp-proto-common==1.45.2
  opentelemetry-exporter-otlp-proto-http==1.45.2 opentelemetry-proto==1.45.2 opentelemetry-sdk==1.45.2
  opentelemetry-semantic-conventions==0.66b2 platformdirs==4.14.8 plotly==7.1.0 plotly-express==0.4.1
  py2store==0.1.24 pydantic==2.14.4 pydantic-core==2.50.5 python-dotenv==1.2.4 referencing==0.37.0
  rpds-py==2026.9.1 sae-lens==6.54.12 simple-parsing==0.1.9 sniffio==1.3.1 tenacity==9.2.1 tomli-w==1.2.0
  transformer-lens==3.9.0 transformers-stream-generator==0.0.5 truststore==0.10.5 typeguard==4.6.1
  typing-inspection==0.4.5 tzdata==2026.6 wandb==0.31.0
)
mkdir -p .whl
for pkg in "${PKGS[@]}"; do
  # a binary wheel for the device's Python 3.12 / x86-64 when one is published; else (pure Python, sdist only)
  # a wheel built here, which runs anywhere
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$pkg" 2>/dev/null || python3 -m pip wheel -q --no-deps -w .whl "$pkg"
done
du -sh .whl
