# expect: sys_exit_at_import.py:3: the study file called sys.exit(0)
import sys
sys.exit(0)
