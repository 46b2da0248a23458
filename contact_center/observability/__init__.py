"""What an operator watches and steers: metrics, request ids in the log, draining on shutdown."""
