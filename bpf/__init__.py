"""Kernel side: bcc C programs, loader, ring-buffer reader, in-kernel syscall filter."""
