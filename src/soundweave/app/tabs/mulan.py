"""MuLaN: search a corpus folder by text, and zero-shot tags for an upload.

Events: /mulan_search (a results table, the top clips as players, the settings), /mulan_tags (label
confidences and the settings), /mulan_stop.
"""

from __future__ import annotations

import os
import shutil

import gradio as gr
import torch

from ... import __version__
from ...audio import info, load
from ...data.manifest import read_manifest
from ...data.synth import INSTRUMENT_NAMES
from ...errors import ConfigError, DataError, SoundweaveError
from ..jobs import handler
from ..media import read_upload, write_settings
from ..models import load_mulan, model_spec
from .base import Tab, as_int, player

UPLOAD_SECONDS = 60.0
MAX_CLIPS = 5000  # clips of a corpus embedded for search
TOP_PLAYERS = 3
BATCH = 16
# prompt ensemble for zero-shot tags: a label's text embedding is the mean over these
TEMPLATES = ("{}", "{} music", "a recording of {}", "solo {}", "{} playing")


class MuLaNTab(Tab):
    def build(self) -> None:
        ctx = self.ctx
        self.upload_cap = ctx.cap(UPLOAD_SECONDS)
        self._index: tuple | None = None  # (key, latents (N, D), records) of the last corpus embedded
        gr.Markdown("MuLaN embeds audio and text in one space: rank the clips of a corpus by a text query, or "
                    "score an upload against a list of labels (zero-shot tags).")
        model = self.model_picker("mulan", "MuLaN model", "MuLaN model")
        with gr.Tabs():
            with gr.Tab("Search a corpus by text"):
                corpus = self.model_picker("corpus", "Corpus folder (with captions.jsonl)", "caption corpus")
                with gr.Row():
                    query = gr.Textbox(value="slow piano chords", label="Query", scale=3)
                    top_k = gr.Slider(1, 20, value=5, step=1, label="Results")
                run_search = gr.Button("Search", variant="primary")
                table = gr.Dataframe(headers=["rank", "score", "clip", "caption"], label="Best matches",
                                     interactive=False, wrap=True)
                with gr.Row():
                    players = [player(f"match {i + 1}", f"mulan-player-{i}") for i in range(TOP_PLAYERS)]
                search_info = gr.JSON(label="Settings")
            with gr.Tab("Zero-shot tags"):
                audio = self.upload("Clip", self.upload_cap)
                self.examples(audio)
                labels = gr.Textbox(value=", ".join(INSTRUMENT_NAMES), label="Labels (comma-separated)", lines=2)
                run_tags = gr.Button("Tag the clip", variant="primary")
                tags = gr.Label(num_top_classes=5, label="Tags")
                tags_info = gr.JSON(label="Cosine similarity per label")
        stop = gr.Button("Stop", variant="stop")
        self.listen(run_search.click, self.search, [model, corpus, query, top_k], [table, *players, search_info],
                    "mulan_search")
        self.listen(run_tags.click, self.tag, [model, audio, labels], [tags, tags_info], "mulan_tags")
        self.stop_on(stop, "mulan_stop")

    # -- search ----------------------------------------------------------------------------------------------
    @handler
    def search(self, model, corpus, query, top_k, progress=gr.Progress(), request: gr.Request = None):
        """The `top_k` clips of `corpus` whose MuLaN audio embedding is closest to the query's."""
        job = self.start_job(request, progress)
        query = str(query or "").strip()
        if not query:
            raise ConfigError("type a text query, e.g. 'slow piano chords'")
        top_k = as_int(top_k, "results", 1, 100)
        spec = model_spec(model, "mulan")
        folder = model_spec(corpus, "corpus")
        mulan = self.ctx.cache.get("mulan", spec, lambda: load_mulan(spec), job.status)
        latents, records, skipped = self._corpus_latents(spec, mulan, folder, job)
        with torch.no_grad():
            text = mulan.get_text_latents(raw_texts=[query]).float().cpu()
        scores = (text @ latents.t())[0]
        top = scores.topk(min(top_k, len(records)))
        out = self.ctx.outputs.new("mulan-search")
        rows, clips = [], []
        for rank, (score, index) in enumerate(zip(top.values.tolist(), top.indices.tolist(), strict=True), 1):
            record = records[index]
            rows.append([rank, round(score, 4), record.path, record.caption])
            if rank <= TOP_PLAYERS:  # a copy in the results folder, so any corpus folder can be played
                target = out / f"match{rank}-{os.path.basename(record.path)}"
                shutil.copyfile(os.path.join(folder, record.path), target)
                clips.append(str(target))
        clips += [None] * (TOP_PLAYERS - len(clips))
        settings = {"tab": "mulan", "mode": "search", "model": spec, "corpus": folder, "query": query,
                    "clips_searched": len(records), "clips_skipped": skipped, "top_k": top_k,
                    "results": [{"rank": r[0], "score": r[1], "clip": r[2]} for r in rows], "soundweave": __version__}
        write_settings(out, "mulan-search-settings", settings)
        return [rows, *clips, settings]

    def _corpus_latents(self, spec: str, mulan, folder: str, job):
        """(latents (N, D), records, skipped) for the corpus; cached until the model or the corpus changes."""
        try:
            records = read_manifest(folder)
        except DataError as exc:
            raise DataError(f"{exc}. Pick a corpus folder: one with a captions.jsonl") from None
        if not records:
            raise DataError(f"the corpus {folder!r} lists no clips")
        records = records[:MAX_CLIPS]
        manifest = os.path.join(folder, "captions.jsonl")
        key = (spec, os.path.abspath(folder), os.path.getmtime(manifest), len(records))
        if self._index is not None and self._index[0] == key:
            return self._index[1], self._index[2], self._index[3]
        self._index = None
        sr, window = mulan.sample_rate, mulan.audio.max_samples / mulan.sample_rate
        kept, latents, skipped, batch = [], [], 0, []
        report = job.callback("embedding the corpus")

        def flush():
            if not batch:
                return
            length = max(w.shape[-1] for w, _ in batch)
            wavs = torch.zeros(len(batch), length)
            mask = torch.zeros(len(batch), length, dtype=torch.bool)
            for row, (w, _) in enumerate(batch):
                wavs[row, : w.shape[-1]], mask[row, : w.shape[-1]] = w, True
            with torch.no_grad():
                latents.append(mulan.get_audio_latents(wavs.to(mulan.device), mask=mask.to(mulan.device),
                                                       long_audio="crop").float().cpu())
            kept.extend(r for _, r in batch)
            batch.clear()

        for i, record in enumerate(records):
            path = os.path.join(folder, record.path)
            try:
                seconds = min(info(path).duration, window)
                wave, _ = load(path, sr=sr, max_seconds=None, duration=seconds)
                if wave.shape[-1] < mulan.audio.min_samples:
                    raise DataError("too short")
                batch.append((wave, record))
            except SoundweaveError:
                skipped += 1
            if len(batch) == BATCH:
                flush()
            report(i + 1, len(records))
        flush()
        if not kept:
            raise DataError(f"none of the {len(records)} clips of {folder!r} could be read")
        stacked = torch.cat(latents)
        self._index = (key, stacked, kept, skipped)
        return stacked, kept, skipped

    # -- zero-shot tags --------------------------------------------------------------------------------------
    @handler
    def tag(self, model, audio, labels, progress=gr.Progress(), request: gr.Request = None):
        """Confidence of each label for the clip: softmax over the cosine similarity (times MuLaN's learned
        temperature) to each label's prompt-ensembled text embedding."""
        job = self.start_job(request, progress)
        names = list(dict.fromkeys(x.strip() for x in str(labels or "").replace("\n", ",").split(",") if x.strip()))
        if len(names) < 2:
            raise ConfigError("give at least two comma-separated labels, e.g. 'piano, drums, flute'")
        spec = model_spec(model, "mulan")
        mulan = self.ctx.cache.get("mulan", spec, lambda: load_mulan(spec), job.status)
        wave = read_upload(audio, sample_rate=mulan.sample_rate, max_seconds=self.upload_cap, what="a clip to tag",
                           min_seconds=max(0.25, mulan.audio.min_samples / mulan.sample_rate))
        job.status("embedding")
        with torch.no_grad():
            clip = mulan.get_audio_latents(wave[None].to(mulan.device)).float().cpu()
            prompts = [t.format(name) for name in names for t in TEMPLATES]
            text = mulan.get_text_latents(raw_texts=prompts).float().cpu()
            text = torch.nn.functional.normalize(text.reshape(len(names), len(TEMPLATES), -1).mean(1), dim=-1)
            cosine = (clip @ text.t())[0]
            scale = float(getattr(getattr(mulan, "contrastive", None), "scale", 10.0))
        probs = torch.softmax(cosine * scale, dim=-1)
        settings = {"tab": "mulan", "mode": "tags", "model": spec, "temperature_scale": round(scale, 3),
                    "templates": list(TEMPLATES), "cosine": {n: round(float(c), 4) for n, c in zip(names, cosine,
                                                                                                   strict=True)},
                    "input": str(audio).rsplit("/", 1)[-1], "soundweave": __version__}
        return {n: float(p) for n, p in zip(names, probs, strict=True)}, settings


__all__ = ["MuLaNTab"]
