/* DistrhoPluginInfo.h: what DPF needs to know about the klon plugin. One source builds three
 * channel layouts; the Makefile gives KLON_INPUTS and KLON_OUTPUTS (1 1: mono, 1 2: mono to
 * stereo, 2 2: stereo) and the name, URI and IDs that go with them. */
#ifndef DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_INFO_H_INCLUDED

#define DISTRHO_PLUGIN_NAME KLON_TITLE
#define DISTRHO_PLUGIN_URI "https://klon.invalid/plugins/" KLON_LABEL
#define DISTRHO_PLUGIN_CLAP_ID "klon." KLON_LABEL

#define DISTRHO_PLUGIN_NUM_INPUTS KLON_INPUTS
#define DISTRHO_PLUGIN_NUM_OUTPUTS KLON_OUTPUTS
#define DISTRHO_PLUGIN_HAS_UI 0
#define DISTRHO_PLUGIN_IS_RT_SAFE 1
#define DISTRHO_PLUGIN_WANT_LATENCY 1
#define DISTRHO_PLUGIN_WANT_STATE 1 /* CLAP saves and restores state only with it */
/* no DISTRHO_PLUGIN_BRAND: DPF then writes no mod: brand or label, which lv2_validate flags */

#define DISTRHO_PLUGIN_LV2_CATEGORY "lv2:DistortionPlugin"
#if KLON_OUTPUTS == 2
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Fx|Distortion|Stereo"
#define DISTRHO_PLUGIN_CLAP_FEATURES "audio-effect", "distortion", "stereo"
#else
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Fx|Distortion|Mono"
#define DISTRHO_PLUGIN_CLAP_FEATURES "audio-effect", "distortion", "mono"
#endif

#endif
