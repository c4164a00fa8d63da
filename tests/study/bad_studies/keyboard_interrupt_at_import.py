# expect: keyboard_interrupt_at_import.py:2: interrupted while loading
raise KeyboardInterrupt
