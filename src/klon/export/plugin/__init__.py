"""`klon export plugin`: the pedal as LV2, VST3 and CLAP plugins and a JACK program (klon.export.plugin.build)."""
