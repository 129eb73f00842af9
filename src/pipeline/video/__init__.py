"""Video: decoded one frame at a time (decode), analysed in time (timeline), masked without
flicker (masks), written with its sound (encode); censor.py runs the two passes."""
