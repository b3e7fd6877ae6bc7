"""Griffin-Lim image -> audio: soundweave's torch path against librosa's `feature.inverse.mel_to_audio`.

Same settings for both (256 x 256 image, 22050 Hz, n_fft 2048, hop 512, 32 iterations, momentum 0.99),
on real music from the synthetic corpus. Spectral convergence is measured the same way for both:
image -> audio -> image, then ||M - M'||_F / ||M||_F on the linear mel magnitudes of the two images.
Goal (foundation issue): at least 5x faster than librosa at equal or better convergence. librosa's
`mel_to_audio` is mel inversion (NNLS) + `griffinlim`; the time of its `griffinlim` alone is reported too.
Prints JSON. librosa is a benchmark-only extra (`python3 tasks.py bench griffin_lim` installs it).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from soundweave.audio import MelImageCodec, load
from soundweave.audio.griffin_lim import mel_to_linear
from soundweave.data.synth import make_corpus
from soundweave.metrics import spectral_convergence


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(n_images: int = 5, repeats: int = 3) -> dict:
    import librosa

    torch.set_num_threads(2)
    mel = MelImageCodec()  # audio-diffusion defaults
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        make_corpus(corpus, n=n_images, seconds=6.0, sr=22050, seed=11, workers=1)
        images = []
        for i in range(n_images):
            audio, _ = load(corpus / "audio" / f"clip-{i:06d}.wav", sr=22050)
            mel.load_audio(raw_audio=audio.numpy())
            images.append(np.asarray(mel.audio_slice_to_image(0)))

    def convergence(image: np.ndarray, audio: np.ndarray) -> float:
        padded = np.pad(audio.astype(np.float32), (0, max(0, mel.slice_size - len(audio))))[: mel.slice_size]
        again = mel.audio_to_images(torch.from_numpy(padded))
        ref = mel.images_to_power_mel(torch.from_numpy(image.copy())).sqrt()
        return float(spectral_convergence(ref, mel.images_to_power_mel(again).sqrt()))

    ours_t, lib_t, ours_sc, lib_sc, lib_gl_t = [], [], [], [], []
    for k, image in enumerate(images):
        g = torch.Generator().manual_seed(k)
        t, audio = best_of(lambda image=image, g=g: mel.image_to_audio(image, generator=g), repeats)
        ours_t.append(t)
        ours_sc.append(convergence(image, audio))
        power = librosa.db_to_power(image.astype(np.float64) * mel.top_db / 255 - mel.top_db)
        t, audio = best_of(lambda power=power: librosa.feature.inverse.mel_to_audio(
            power, sr=mel.sample_rate, n_fft=mel.n_fft, hop_length=mel.hop_length, n_iter=mel.n_iter), repeats)
        lib_t.append(t)
        lib_sc.append(convergence(image, audio))
        # librosa's phase reconstruction alone, given our linear magnitude (no mel inversion)
        magnitude = mel_to_linear(mel.images_to_power_mel(torch.from_numpy(image.copy())[None]), mel.filters,
                                  pinv=mel.filters_pinv).sqrt()[0].double().numpy()
        t, _ = best_of(lambda magnitude=magnitude: librosa.griffinlim(
            magnitude, n_iter=mel.n_iter, hop_length=mel.hop_length, n_fft=mel.n_fft), repeats)
        lib_gl_t.append(t)
    batch = torch.from_numpy(np.stack(images))
    batch_t, _ = best_of(lambda: mel.images_to_audio(batch, generator=torch.Generator().manual_seed(0)), repeats)
    result = {
        "settings": {"x_res": mel.x_res, "y_res": mel.y_res, "sample_rate": mel.sample_rate, "n_fft": mel.n_fft,
                     "hop_length": mel.hop_length, "n_iter": mel.n_iter, "images": n_images,
                     "torch_threads": torch.get_num_threads()},
        "soundweave_seconds_per_image": round(float(np.mean(ours_t)), 4),
        "soundweave_batched_seconds_per_image": round(batch_t / n_images, 4),
        "librosa_seconds_per_image": round(float(np.mean(lib_t)), 4),
        "librosa_griffinlim_only_seconds_per_image": round(float(np.mean(lib_gl_t)), 4),
        "speedup": round(float(np.mean(lib_t) / np.mean(ours_t)), 2),
        "soundweave_spectral_convergence": round(float(np.mean(ours_sc)), 4),
        "librosa_spectral_convergence": round(float(np.mean(lib_sc)), 4),
    }
    result["goal_met"] = bool(result["speedup"] >= 5 and
                              result["soundweave_spectral_convergence"] <= result["librosa_spectral_convergence"])
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
