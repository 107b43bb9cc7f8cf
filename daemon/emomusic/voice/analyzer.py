"""The voice pipeline: VAD-gated windows of speech -> voice encoder -> per-voice adaptation -> head
(+ what the listener told of this voice: voice/personal.py).

Only voiced audio is analysed; the audio itself never leaves this process (the adaptation state
holds statistics only). One observation per audio chunk that completed at least one window
(several windows in one chunk are averaged). Probabilities are temperature-calibrated, because
fusion weighs them as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from emomusic.audio import PlaybackGuard
from emomusic.config import Config
from emomusic.config.perception import ModelsConfig, VoiceConfig
from emomusic.labels import VOICE_LABELS
from emomusic.messages import AudioChunk, Observation, Sensed
from emomusic.runtime import peakedness, softmax
from emomusic.voice.adapt import SpeakerAdapter, standardise
from emomusic.voice.encoder import STATE_DIM, VoiceEncoder
from emomusic.voice.head import REBUILD_VOICE, load_head
from emomusic.voice.personal import PAIR_WINDOW_S, PERSONAL_FILE, Personaliser
from emomusic.voice.vad import SpeechWindow, SpeechWindower

ADAPTATION_FILE = "voice_adaptation.json"
log = logging.getLogger("emomusic.voice")


class VoiceClassifier:
    """Speech windows (int16, 2 s) -> calibrated probabilities over VOICE_LABELS.

    With ``adaptation`` each window is read relative to its voice's learned baseline and then
    taught to it (``learn``); without, every voice is read against the population, as on day one.
    With ``personal`` (and adaptation: it tells the voices apart) the listener's statements correct the
    head per voice (``teach``)."""

    def __init__(self, models_dir: Path, threads: int = 1, adaptation: Path | None | bool = None,
                 personal: Path | None | bool = None) -> None:
        self.encoder = VoiceEncoder(models_dir, threads)
        path = models_dir / "voice_head.json"
        loaded = load_head(path, VOICE_LABELS, STATE_DIM)
        self.head, self.prior_mean, self.prior_var = loaded.head, loaded.prior_mean, loaded.prior_var
        self.labels = VOICE_LABELS
        self.adapter: SpeakerAdapter | None = None
        if adaptation is not None and adaptation is not False:
            self.adapter = SpeakerAdapter(self.prior_mean, self.prior_var,
                                          adaptation if isinstance(adaptation, Path) else None)
        self.adapted = 0.0  # how far adaptation had got for the last windows (0..1)
        self.personal: Personaliser | None = None
        if personal is not None and personal is not False and self.adapter is not None:
            if not self.head.class_means.any():
                log.warning("%s has no class_means: the listener's statements cannot teach the voice head; "
                            "rebuild it with %s", path, REBUILD_VOICE)
            else:
                self.personal = Personaliser(self.head, VOICE_LABELS, personal if isinstance(personal, Path) else None)
        self.inputs = np.zeros((0, STATE_DIM), np.float32)  # the head's input for the last windows…
        self.voice_ids: list[int | None] = []  # …and whose voice each was

    def classify(self, windows: list[np.ndarray], learn: bool = True) -> np.ndarray:
        if not windows:
            return np.zeros((0, len(self.labels)), np.float32)
        who, x = self.encoder.encode(windows)
        ids: list[int | None] = [None] * len(windows)
        if self.adapter is not None:
            z, self.adapted = self.adapter.transform(x, who)
            if learn:
                ids = list(self.adapter.update(x, who))
            else:
                ids = [None if (k := self.adapter.voice_of(w)) is None else self.adapter.voices[k].id for w in who]
        else:
            z = standardise(x, self.prior_mean, self.prior_var)
        logits = self.head.logits(z)
        if self.personal is not None:
            logits = logits + self.personal.adjust(z, ids)
        self.inputs, self.voice_ids = z, ids
        return softmax(logits)

    def remember(self, t: float, weights: np.ndarray) -> None:
        """The last windows (and how much each counted, ``weights``) as what each voice said at stream
        time ``t``, for a statement that may follow."""
        if self.personal is None or self.adapter is None:
            return
        for vid in {v for v in self.voice_ids if v is not None}:
            sel = [i for i, v in enumerate(self.voice_ids) if v == vid]
            centre = self.adapter.centre(vid)
            if centre is not None:
                self.personal.note(t, vid, self.inputs[sel], weights[sel], centre)

    def teach(self, label: str, t: float) -> tuple[int, int] | None:
        """The listener feels ``label`` (stream time ``t``): (voice, its statements), or None."""
        if self.personal is None or self.adapter is None:
            return None
        self.personal.keep_only({v.id for v in self.adapter.voices})
        return self.personal.teach(label, t)

    def close(self) -> None:
        if self.adapter is not None:
            self.adapter.save()


def window_confidence(w: SpeechWindow, probs: np.ndarray, window_s: float, margin_db: float) -> float:
    """How much to trust one window: enough speech, clearly above the noise (and the music), decisive."""
    duration = min(1.0, w.speech_s / window_s)
    snr = float(np.clip((w.snr_db - 3.0) / 20.0, 0.1, 1.0))
    music = 1.0 if w.over_music_db is None else float(np.clip((w.over_music_db - margin_db) / 10.0, 0.1, 1.0))
    return duration * snr * music * (0.5 + 0.5 * peakedness(probs))


class VoiceAnalyzer:
    """AudioChunk -> Observation for the windows of speech it completed, or None."""

    modality = "voice"

    def __init__(self, v: VoiceConfig, m: ModelsConfig, keep_in: Path | None = None,
                 classifier: VoiceClassifier | None = None, guard: PlaybackGuard | None = None) -> None:
        """``keep_in``: the state dir, where what is learned of each voice is kept (None: in memory only)."""
        self.cfg = v
        # a window is stamped with its end, which the VAD (its ring and padding) may settle after up to a
        # window's worth of later audio has arrived
        self.latency_s = v.window_s
        adaptation = ((keep_in / ADAPTATION_FILE) if keep_in is not None else True) if v.adapt else None
        personal = ((keep_in / PERSONAL_FILE) if keep_in is not None else True) if v.personalise else None
        self.classifier = classifier or VoiceClassifier(m.path, m.threads, adaptation, personal)
        self.guard = guard or PlaybackGuard(v.music_margin_db)
        self.windower = SpeechWindower(
            v.vad_aggressiveness, v.window_s, v.hop_s, v.min_speech_s, guard=self.guard, first_s=v.first_s
        )

    def process(self, item: Sensed) -> Observation | None:
        if not isinstance(item, AudioChunk):
            raise TypeError(f"the voice analyzer reads microphone audio, not {type(item).__name__}")
        return self.observe(self.windower.feed(item.samples, item.t))

    def clip(self, samples: np.ndarray) -> Observation | None:
        """One whole recording (``emomusic analyze``, the web page), to its last window; None
        without speech."""
        return self.observe(self.windower.feed(samples, 0.0) + self.windower.flush())

    def observe(self, windows: list[SpeechWindow]) -> Observation | None:
        """One observation for windows of speech: pooled by each window's confidence. An utterance's
        provisional first second is read alone (where a whole window came with it, it is dropped), and
        neither teaches the voice's baseline nor pairs with a statement: fusion replaces it with the
        next reading."""
        whole = [w for w in windows if not w.provisional]
        provisional = not whole
        windows = whole or windows[-1:]
        if not windows:
            return None
        probs = self.classifier.classify([w.samples for w in windows], learn=not provisional)
        conf = np.array([window_confidence(w, p, self.cfg.window_s, self.cfg.music_margin_db)
                         for w, p in zip(windows, probs, strict=True)])
        pooled = (probs * conf[:, None]).sum(0) / max(conf.sum(), 1e-9)
        t = windows[-1].end
        if not provisional:
            self.classifier.remember(t, conf)
        return Observation(
            modality=self.modality,
            t=t,
            probabilities={label: float(p) for label, p in zip(VOICE_LABELS, pooled, strict=True)},
            confidence=float(np.clip(conf.max(), 0.0, 1.0)),
            extras={"speech_s": round(sum(w.speech_s for w in windows), 2),
                    "snr_db": round(float(np.mean([w.snr_db for w in windows])), 1),
                    "adapted": round(getattr(self.classifier, "adapted", 0.0), 2)},
            provisional=provisional,
        )

    def teach(self, label: str, t: float) -> None:
        """The listener says they feel ``label`` (stream time ``t``): the voice that spoke just before
        learns what it sounds like so (the worker calls this on its own thread)."""
        got = self.classifier.teach(label, t)
        if got is None:
            log.info("voice: nothing to learn from 'I feel %s' (no speech in the %.0f s before it%s)", label,
                     PAIR_WINDOW_S, "" if self.classifier.personal is not None else ", or voice.personalise is off")
        else:
            log.info("voice: learned 'I feel %s' for voice %d (%d statements of that voice kept)", label, *got)

    def close(self) -> None:
        """Keep what was learned about the voices (the worker calls this when it stops)."""
        close = getattr(self.classifier, "close", None)
        if close is not None:
            close()


def build(cfg: Config, playback: PlaybackGuard, persist: bool) -> VoiceAnalyzer:
    """The voice modality's analyzer (config.modalities): ``persist`` keeps what it learns of each voice
    in the state dir (a replayed recording must not change it)."""
    return VoiceAnalyzer(cfg.voice, cfg.models, cfg.state_dir if persist else None, guard=playback)
