"""MPD as the player: the daemon's picks go into the queue people already use, and MPD is followed.

It has the pygame player's interface (play, pause, resume, stop, volume, ``finished``) plus what a
player shared with people needs: ``set_next`` mirrors the daemon's planned queue right after the
current song (``append``: the user's queue stays around it; ``own``: the rest of the queue goes),
and ``poll`` reads MPD's state — woken by ``idle`` — and reports what someone else did as
:class:`PlayerEvent`: a song started by hand, a pause, a volume change, a database update, the
connection lost or back. The daemon's picks carry MPD priority 1, so picks a previous run left in
the queue are recognised and removed; a pick is removed once it has played. Mopidy has no priorities:
there the picks go in unmarked, and after a reconnect the ones this daemon queued are known by URI.

Connection loss never raises out of ``poll``: it becomes an event, and the player reconnects with a
capped backoff. Commands while disconnected raise :class:`PlayerOffline`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from emomusic.config.music import PlayerConfig
from emomusic.music.players.base import Backend, Clock, PlaybackError, PlayerEvent, PlayerOffline
from emomusic.music.players.mpd_client import (
    MPD_PREFIX,
    IdleWatcher,
    MpdAddress,
    MpdError,
    NotSupported,
    call,
    close,
    connect,
    describe,
    key_of,
    uri_for,
    uri_style,
)
from emomusic.music.players.mpd_library import music_dir, scan_mpd
from emomusic.music.tags import first_value

log = logging.getLogger("emomusic.mpd")

PICK_PRIO = 1  # MPD priority that marks the daemon's picks in a shared queue
SYNC_S = 2.0  # MPD's state is read at least this often, even with no idle event
RETRY_MAX_S = 30.0
NATURAL_END_S = 3.0  # a song change this close to the expected end is MPD moving on, not a person


class MpdPlayer:
    """Steers an MPD (or Mopidy) that people share: its picks go after the current song."""

    def __init__(self, addr: MpdAddress, queue: str = "append", music_dir: Path | None = None,
                 volume: float = 0.6, clock: Callable[[], float] = time.monotonic, watch: bool = True) -> None:
        self.addr, self.own, self.music_dir, self.clock = addr, queue == "own", music_dir, clock
        self.volume = volume  # 0..1, as MPD last said (or as we set it)
        self.client: Any = None
        self.error: str | None = None
        self.current: str | None = None  # library key of the song MPD plays or holds
        self.current_id: str | None = None
        self.title = self.artist = ""
        self.paused = False
        self._state = "stop"
        self._song_end = float("inf")
        self._ended = False
        self._ours: list[str] = []  # ids of the picks queued after the current song
        self._ours_uris: list[str] = []
        self._picks: dict[str, str] = {}  # id -> URI of every pick in the queue (Mopidy: no marks)
        self.style = "mpd"  # how the server names files (see mpd_client.uri_for)
        self.priorities = True  # until the server says it has none
        self._playing_pick: str | None = None  # id of the current song, if it is one of our picks
        self._events: list[PlayerEvent] = []
        self._retry_at = -float("inf")
        self._delay = 1.0
        self._last_sync = -float("inf")
        self.watcher = IdleWatcher(addr) if watch else None
        if self.watcher is not None:
            self.watcher.start()

    # -- library keys and MPD URIs ----------------------------------------------------------------
    def uri_of(self, key: str) -> str | None:
        if key.startswith(MPD_PREFIX):
            return key[len(MPD_PREFIX):]
        if self.style == "file":
            return Path(key).as_uri()
        if self.music_dir is not None:
            try:
                return uri_for(Path(key), self.music_dir, self.style)
            except ValueError:
                return None
        return None

    def key_of(self, uri: str) -> str:
        return key_of(uri, self.music_dir)

    # -- the connection ---------------------------------------------------------------------------
    @property
    def online(self) -> bool:
        return self.client is not None

    @property
    def audible(self) -> bool:
        return self.playing  # MPD's output may be in this room: the voice guard assumes it is

    def describe(self) -> str:
        return f"MPD at {self.addr}"

    @property
    def playing(self) -> bool:
        return self.online and self._state == "play"

    def _lost(self, e: BaseException) -> PlayerOffline:
        close(self.client)
        self.client = None
        self._retry_at = self.clock() + self._delay
        self._fail(f"MPD at {self.addr}: connection lost ({describe(e)}); reconnecting")
        return PlayerOffline(self.error or "MPD is not connected")

    def _fail(self, error: str) -> None:
        if error != self.error:
            log.error("%s", error)
            self._events.append(PlayerEvent("lost", error=error))
        self.error = error

    def _call(self, name: str, *args: Any) -> Any:
        """One MPD command; a lost connection raises PlayerOffline, MPD's refusal mpd.CommandError."""
        import mpd

        if self.client is None:
            raise PlayerOffline(self.error or f"MPD at {self.addr} is not connected")
        try:
            return call(self.client, name, *args)
        except (OSError, mpd.ConnectionError, mpd.ProtocolError) as e:
            raise self._lost(e) from None

    def _connect(self, now: float) -> None:
        try:
            self.client = connect(self.addr)
        except MpdError as e:
            self._fail(str(e))
            self._retry_at = now + self._delay
            self._delay = min(self._delay * 2, RETRY_MAX_S)
            return
        self.style = uri_style(self.client)
        log.info("connected to MPD at %s (protocol %s%s)%s", self.addr, self.client.mpd_version,
                 "" if self.style == "mpd" else f"; Mopidy, songs named as {self.style} URIs",
                 f" after: {self.error}" if self.error else "")
        self.error, self._delay = None, 1.0
        self._events.append(PlayerEvent("back"))
        self._adopt()

    def _adopt(self) -> None:
        """Take MPD as it is: picks a previous run left behind are removed, the song it plays is
        kept (never cut), a pause is the user's."""
        import mpd

        st = self._call("status")
        mine = set() if self.priorities else set(self._picks.values())  # queued before the connection was lost
        self._ours, self._ours_uris, self._playing_pick, self._picks = [], [], None, {}
        for song in self._call("playlistinfo"):
            if int(song.get("prio", 0)) == PICK_PRIO or song.get("file") in mine:
                if song["id"] == st.get("songid"):
                    self._playing_pick = song["id"]
                    self._picks[song["id"]] = song["file"]
                else:
                    try:
                        self._call("deleteid", song["id"])
                    except (mpd.CommandError, NotSupported):
                        pass
        self._state, self.current_id, self.current = st["state"], None, None
        self.paused = st["state"] == "pause"
        if st["state"] != "stop" and "songid" in st:
            self._set_current(self._call("currentsong"), st)
            self._events.append(PlayerEvent("advanced", self.current or "", self.title, self.artist,
                                            ours=self._playing_pick is not None))
        if self.paused:
            self._events.append(PlayerEvent("paused"))
        self._sync_volume(st)
        self._last_sync = self.clock()

    # -- following MPD ----------------------------------------------------------------------------
    def poll(self) -> list[PlayerEvent]:
        """Reconnect if it is time, read MPD's state if it changed (or every SYNC_S), and return
        what happened since the last call."""
        import mpd

        now = self.clock()
        if self.client is None and now >= self._retry_at:
            self._connect(now)
        if self.client is not None:
            subsystems = self.watcher.take() if self.watcher is not None and self.watcher.changed.is_set() else set()
            if subsystems or now - self._last_sync >= SYNC_S:
                self._last_sync = now
                try:
                    self._sync(subsystems, now)
                except PlayerOffline:
                    pass
                except (mpd.CommandError, NotSupported) as e:
                    log.warning("MPD at %s: %s", self.addr, e)
        events, self._events = self._events, []
        return events

    def _set_current(self, song: dict[str, Any], st: dict[str, Any]) -> None:
        self.current_id = st.get("songid")
        self.current = self.key_of(song.get("file", "")) if song.get("file") else None
        self.title = first_value(song.get("title")) or first_value(song.get("name")) or Path(song.get("file", "?")).stem
        self.artist = first_value(song.get("artist"))
        self._estimate_end(st)

    def _estimate_end(self, st: dict[str, Any]) -> None:
        # MPD says "duration"; Mopidy only "time" as "elapsed:total" (whole seconds)
        total = st.get("duration") or str(st.get("time", "0:0")).partition(":")[2] or 0
        try:
            left = float(total) - float(st.get("elapsed", 0))
        except ValueError:
            left = 0.0
        self._song_end = self.clock() + left if st.get("state") == "play" and left > 0 else float("inf")

    def _sync_volume(self, st: dict[str, Any]) -> None:
        vol = int(st.get("volume", -1))
        if vol >= 0 and round(self.volume * 100) != vol:
            self.volume = vol / 100
            self._events.append(PlayerEvent("volume", volume=vol))

    def _sync(self, subsystems: set[str], now: float) -> None:
        if "database" in subsystems:
            self._events.append(PlayerEvent("database"))
        st = self._call("status")
        self._sync_volume(st)
        if "playlist" in subsystems and self._ours:  # picks the user removed from the queue are forgotten
            present = {s["id"] for s in self._call("playlistinfo")}
            self._ours = [i for i in self._ours if i in present]
        sid = st.get("songid")
        if sid != self.current_id:
            natural = now >= self._song_end - NATURAL_END_S
            self._forget_pick(self.current_id)
            if sid is None:  # the queue ran out (a person's stop keeps the position)
                self._ended = self.current is not None and self._state == "play"
                self.current, self.current_id, self._song_end = None, None, float("inf")
            else:
                ours = sid in self._ours
                if ours:
                    self._ours.remove(sid)
                    self._playing_pick = sid
                else:
                    self._ours_uris = []  # the picks now wait somewhere else: placed after this song again
                self._set_current(self._call("currentsong"), st)
                self._events.append(PlayerEvent("advanced", self.current or "", self.title, self.artist,
                                                by_hand=not natural, ours=ours))
        else:
            self._estimate_end(st)
        state = st["state"]
        if state != self._state:
            if state == "pause" or (state == "stop" and sid is not None):
                self._events.append(PlayerEvent("paused"))
            elif state == "play":
                self._events.append(PlayerEvent("resumed"))
            self._state = state
        self.paused = state == "pause" or (state == "stop" and sid is not None)

    def _forget_pick(self, song_id: str | None) -> None:
        """A pick that has played (or was cut short) leaves the queue: the user's queue is theirs."""
        import mpd

        if song_id is not None and song_id == self._playing_pick:
            self._playing_pick = None
            self._picks.pop(song_id, None)
            try:
                self._call("deleteid", song_id)
            except (mpd.CommandError, NotSupported):
                pass

    def finished(self) -> bool:
        """True once, when MPD stopped at the end of its queue after playing."""
        ended, self._ended = self._ended, False
        return ended

    # -- steering ---------------------------------------------------------------------------------
    def play(self, path: str) -> None:
        """Play the library track ``path`` now: inserted after the current song and started."""
        import mpd

        key = str(path)
        uri = self.uri_of(key)
        if uri is None:
            raise PlaybackError(f"{key}: not under player.mpd.music_directory, so MPD cannot play it")
        st = self._call("status")
        if st.get("songid") is not None and st.get("songid") == self.current_id and key == self.current \
                and st["state"] == "play":
            return
        try:
            sid = self._call("addid", uri, int(st["song"]) + 1) if "song" in st else self._call("addid", uri)
        except (mpd.CommandError, NotSupported) as e:
            raise PlaybackError(f"{key}: MPD cannot play it ({e})") from None
        self._mark(sid, uri)
        previous = st.get("songid")
        self._call("playid", sid)
        self._forget_pick(previous)
        self._playing_pick = sid
        self._state, self.paused, self._ended = "play", False, False
        # What we started, by its id: Mopidy starts playing asynchronously, so its status and currentsong
        # may still show the previous song (which the next sync would take for a song chosen by hand).
        songs = self._call("playlistid", sid)
        self._set_current(songs[0] if songs else {"file": uri}, {**self._call("status"), "songid": sid})
        self._ours_uris = []  # the mirrored picks are re-placed after the new song

    def set_next(self, keys: Sequence[str]) -> None:
        """Mirror the daemon's planned queue right after the current song."""
        import mpd

        if self.client is None:
            return
        uris = [u for p in keys if (u := self.uri_of(p)) is not None]
        if uris == self._ours_uris and len(self._ours) == len(uris):
            return
        try:
            for sid in self._ours:
                self._picks.pop(sid, None)
                try:
                    self._call("deleteid", sid)
                except (mpd.CommandError, NotSupported):
                    pass
            self._ours = []
            if self.own:
                current = self._call("status").get("songid")
                for song in self._call("playlistinfo"):
                    if song["id"] != current:
                        self._call("deleteid", song["id"])
            st = self._call("status")
            for i, uri in enumerate(uris):
                sid = self._call("addid", uri, int(st["song"]) + 1 + i) if "song" in st else self._call("addid", uri)
                self._mark(sid, uri)
                self._ours.append(sid)
            self._ours_uris = uris
        except (mpd.CommandError, NotSupported) as e:
            log.warning("MPD at %s: queueing the daemon's picks failed (%s)", self.addr, e)

    def _mark(self, sid: str, uri: str) -> None:
        """Mark a pick with MPD priority 1, so that a restarted daemon finds the picks it left behind."""
        self._picks[sid] = uri
        if not self.priorities:
            return
        try:
            self._call("prioid", PICK_PRIO, sid)
        except NotSupported:
            self.priorities = False
            log.warning("%s has no song priorities (prioid): the daemon's picks still go right after the current "
                        "song, but picks an earlier run of the daemon left in the queue cannot be told from the "
                        "user's songs", self.describe())

    def pause(self) -> None:
        if self._state == "play":
            self._call("pause", 1)
            self._state, self.paused = "pause", True

    def resume(self) -> None:
        if self._state != "play" and self.current is not None:
            self._call("pause", 0) if self._state == "pause" else self._call("play")
            self._state, self.paused = "play", False

    def stop(self) -> None:
        """Mode off: MPD stops and the daemon's picks leave the queue (the user's songs stay)."""
        self.set_next([])
        self._call("stop")
        self._state, self.paused = "stop", False
        self.current = self.current_id = None

    def set_volume(self, volume: float) -> None:
        import mpd

        self.volume = max(0.0, min(1.0, volume))
        try:
            self._call("setvol", round(self.volume * 100))
        except (mpd.CommandError, NotSupported) as e:  # mixer_type "none": MPD has no volume to set
            log.warning("MPD at %s cannot set the volume (%s)", self.addr, e)

    def close(self) -> None:
        """The daemon stops: its upcoming picks leave the queue; MPD plays on for its users."""
        if self.watcher is not None:
            self.watcher.close()
        if self.client is not None:
            try:
                self.set_next([])
            except PlayerOffline:
                pass
            close(self.client)
            self.client = None



def open_mpd(pc: PlayerConfig, password: str | None, volume: float, clock: Clock) -> MpdPlayer:
    return MpdPlayer(MpdAddress.from_settings(pc.mpd, password), pc.mpd.queue, music_dir(pc), volume, clock)


BACKEND = Backend(open_mpd, scan_library=scan_mpd, lists_when_reached=True)
