"""`klon export plugin`: the pedal as LV2, VST3 and CLAP plugins and a JACK program
(klon.export.plugin.build). The choices live here, light to import for the command line."""
FORMATS = ("lv2", "vst3", "clap", "jack")
# channel layouts: mono in and out, mono in and stereo out (both sides the same), stereo
LAYOUTS = ("klon_mono", "klon_mono_stereo", "klon_stereo")
