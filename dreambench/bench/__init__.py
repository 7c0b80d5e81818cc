"""``dreambench bench``: measured throughput of training, sampling and scoring on one device.

Everything reported is measured in the same process on the same device; nothing is looked up except the
datasheet bf16 peak of known GPUs (dense, no sparsity), which ``--peak-tflops`` overrides. Figures:

- ``matmul``: a large bf16 matrix product, the device's *achieved* peak (TFLOP/s), measured here;
- ``reference``: the plain DreamBooth training loop of ``/work/shared/perf/README.md`` (fp32 master
  weights, bf16 autocast on CUDA, VAE and text encoder run every step, AdamW ``foreach``; 1 instance + 1
  class image per step): steps/s, peak memory, FLOPs per step;
- ``methods``: each method's own training loop (``Method.train``) on a real subject: steps/s (timed inside
  the loop when the method reports it), peak memory, FLOPs per step;
- ``packing``: ``pack`` worker processes on the one device, each loading the model and training the first
  listed method as ``dreambench run --jobs-per-gpu K`` does: aggregate steps/s over the window in which
  they all ran (each loop times itself; ``TrainStats.started`` puts them on one clock) and its ratio to
  the reference loop;
- ``packing_inprocess``: the same ``pack`` DreamBooth jobs trained in THIS process
  (``bench.packing.train_packed``: steps interleaved, one CUDA stream per job, no time-slicing between
  processes): aggregate steps/s, peak memory of all jobs, and ``vs_process_packing``, its ratio to the
  process kind. Measured side by side so that the first device run decides which kind becomes the default;
- ``sampling``: the suite's sampler (``methods.sampling.sample_images``, CFG, profile's sampler steps):
  images/s and FLOPs per image;
- ``scoring``: DINO + CLIP image embeddings of the metric profile at 224 px: images/s and FLOPs per image;
- ``score_folder``: ``dreambench score`` end to end on ``score_images`` PNGs at the profile's resolution
  in the protocol layout (decode pool, real-image embeddings, LPIPS, tables): seconds and images/s.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one step (one image); a rate
times FLOPs gives achieved TFLOP/s and its fraction of the peak. ``estimate`` is the wall time of the full
protocol (30 subjects x 25 prompts x 4 images per method, class images, scoring) on one such device.
Peak memory is measured on CUDA only (``null`` on CPU).

Modules: ``measure`` (synchronisation, peak memory, FLOPs, matmul and datasheet peaks), ``fixtures`` (the
images and stand-in dataset bench makes), ``training`` (reference loop, methods, packing),
``sampling_scoring``, ``estimate`` (the full protocol's wall time), ``driver`` (``run_bench`` writing
``bench.json``) and ``report`` (the printed table).
"""

from .driver import BENCH_FILE, BenchOptions, run_bench
from .fixtures import synthetic_dataset, write_protocol_folder
from .report import format_bench
from .training import bench_packing, bench_packing_inprocess

__all__ = ["BENCH_FILE", "BenchOptions", "bench_packing", "bench_packing_inprocess", "format_bench", "run_bench", "synthetic_dataset",
           "write_protocol_folder"]
