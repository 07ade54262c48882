collect_ignore = ["trial"]
