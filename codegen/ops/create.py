"""Array creation from traced values: np.array / np.stack of tracers, zeros, ones, eye, arange."""

from __future__ import annotations
