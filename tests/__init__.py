"""Test suite; this file keeps tests/ off sys.path so its folders cannot shadow the packages."""
