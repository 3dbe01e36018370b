"""Progress of long commands on stderr: a live bar on a terminal (tqdm), a plain line every
few seconds otherwise (a log, CI), nothing with --quiet or when stdout is JSON and stderr
is not a terminal."""
import sys
import time


class Progress:
    """Progress(total, unit, desc): update(done, note) as work goes; close() at the end. A
    total of None means only the elapsed time is known."""

    def __init__(self, total, unit, desc, *, stream=None, every=5.0, enabled=True):
        self.stream = stream or sys.stderr
        self.total = total
        self.unit = unit
        self.desc = desc
        self.every = every
        self.enabled = enabled
        self.bar = None
        self.last = time.monotonic()
        self.started = self.last
        if enabled and self.stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, unit=unit, desc=desc, file=self.stream, leave=False,
                                dynamic_ncols=True, bar_format=None if total else "{desc}: {n:.1f} {unit} {postfix}")

    def update(self, done, note=""):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.n = min(done, self.total) if self.total else done
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.refresh()
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            of = f"/{self.total:g}" if self.total else ""
            print(f"{self.desc}: {done:g}{of} {self.unit}" + (f", {note}" if note else ""),
                  file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def run_progress(desc, duration, enabled=True):
    """A Progress for one Runtime.run, and the callable to hand it as run(progress=...)."""
    p = Progress(duration, "s", desc, enabled=enabled)
    started = time.monotonic()

    def tick():
        p.update(round(time.monotonic() - started, 1))
    return p, tick
