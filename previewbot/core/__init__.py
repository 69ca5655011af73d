"""The preview core: intents run as steps over the ports.

No HTTP, no SDK, no environment reads here: the front doors (previewbot.action,
previewbot.cli) build the adapters and hand them in; import-linter holds that line.
"""
