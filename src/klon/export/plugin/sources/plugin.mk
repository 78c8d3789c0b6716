# One channel layout of the klon plugin through DPF's plugin makefile (see Makefile).
FILES_DSP = klon_plugin.cpp

all: $(FORMAT_TARGETS)

include $(DPF_PATH)/Makefile.plugins.mk

CHANNELS = $(if $(filter 2,$(INPUTS)),2,1)
KLON_DEFINES = -DKLON_LABEL='"$(NAME)"' -DKLON_TITLE='"$(TITLE)"' -DKLON_ID="'$(ID)'" \
    -DKLON_INPUTS=$(INPUTS) -DKLON_OUTPUTS=$(OUTPUTS) -DKLON_CHANNELS=$(CHANNELS)
# DPF adds -ffast-math; linked into a shared object, that turns flush-to-zero on in the whole
# host process when the plugin loads. The pedal sets it itself, around its own work only.
BUILD_C_FLAGS += -fno-fast-math
BUILD_CXX_FLAGS += -fno-fast-math $(KLON_DEFINES)
LINK_FLAGS += $(KLON_LIB) -lm
