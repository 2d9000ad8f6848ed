"""The audiostyle command line (installed as the import package ``audiostyle_cli``).

Every command imports the library when its work starts; importing the library first sets
torch's thread policy (see :func:`audiostyle.system.prefer_sleeping_threads`).
"""
