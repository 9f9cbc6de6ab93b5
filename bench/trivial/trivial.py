import sys

print("trivial", sys.argv[1])
