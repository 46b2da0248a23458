"""Protocol adapters: each sub-package speaks one wire protocol and the core's DTOs inside."""
