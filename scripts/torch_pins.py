#!/usr/bin/env python3
"""The requirements that must match the installed torch, one per line (read by scripts/env.sh).

* numpy < 2 with torch < 2.3: those wheels are built against numpy 1.x and cannot run with 2.x.
* torchaudio 0.X.Y with torch 1.X.Y: fairseq 0.12.2 requires some torchaudio, and the newest
  release is built for torch 2.x (importing it under torch 1.13.1 fails with an undefined symbol).
"""
import torch

release = torch.__version__.split("+")[0]
major, minor = (int(part) for part in release.split(".")[:2])
if (major, minor) < (2, 3):
    print("numpy<2")
if major == 1:
    print("torchaudio==0." + release.split(".", 1)[1])
