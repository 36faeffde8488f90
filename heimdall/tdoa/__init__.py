"""Time differences of arrival (DESIGN §11), one step per module: align → correlate → solve →
fuse."""
