"""The service shell: wiring the stages into a daemon, analyzer worker threads, systemd notify, logging."""
