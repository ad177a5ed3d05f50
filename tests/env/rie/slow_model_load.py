"""A custom-object module that takes minutes to import, for the emulator's timeout test.

The server imports CUSTOM_OBJECT_MODULES inside the model's cold load (after TensorFlow), so naming this
module makes that load outlast any function timeout on any machine, loaded or idle: the test's timeout
can then sit far above a fresh runtime's init without the load ever finishing first. The emulator kills
the runtime at the timeout, long before the sleep ends.
"""

from __future__ import annotations

import time

time.sleep(600)
