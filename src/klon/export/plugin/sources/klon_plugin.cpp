/* klon_plugin.cpp: the DPF glue around klon_plugin.h (the pedal as a plugin, in C). Parameters
 * arrive once per block in every format DPF builds, so they are handed to the C side at the
 * start of run(); the glides and crossfades live there. */
#include "DistrhoPlugin.hpp"

#include <cstring>

#include "klon_plugin.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define KLON_X86 1
#endif

START_NAMESPACE_DISTRHO

enum Parameters { kGain, kTreble, kLevel, kEngine, kBypass, kParameterCount };

/* flush-to-zero and denormals-are-zero while the pedal runs, whatever the host set, and the
   host's mode restored after: a decaying tail costs no more than signal */
class ScopedFlushToZero {
public:
#ifdef KLON_X86
    ScopedFlushToZero() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040); }
    ~ScopedFlushToZero() { _mm_setcsr(saved); }
private:
    unsigned int saved;
#endif
};

class KlonPlugin : public Plugin {
public:
    KlonPlugin() : Plugin(kParameterCount, 0, 0), fPedal(klon_plugin_new(KLON_CHANNELS))
    {
        fValues[kGain] = fValues[kTreble] = fValues[kLevel] = 0.5f;
        fValues[kEngine] = fValues[kBypass] = 0.0f;
        fChanged = true;
        start();
    }

    ~KlonPlugin() override { klon_plugin_free(fPedal); }

protected:
    const char* getLabel() const override { return KLON_LABEL; }
    const char* getDescription() const override
    {
        return "The Klon Centaur overdrive: a circuit model checked against SPICE, or a "
               "trained neural model of its gain stage.";
    }
    const char* getMaker() const override { return "klon"; }
    const char* getHomePage() const override { return "https://klon.invalid/"; }
    const char* getLicense() const override { return "MIT"; }
    uint32_t getVersion() const override { return d_version(0, 1, 0); }
    int64_t getUniqueId() const override { return d_cconst('K', 'l', 'n', KLON_ID); }

    void initParameter(uint32_t index, Parameter& parameter) override
    {
        static const char* const knobs[3][2] = {
            {"Gain", "gain"}, {"Treble", "treble"}, {"Level", "level"}};
        if (index == kBypass) {
            parameter.initDesignation(kParameterDesignationBypass);
            return;
        }
        parameter.hints = kParameterIsAutomatable;
        parameter.ranges.min = 0.0f;
        parameter.ranges.max = 1.0f;
        parameter.ranges.def = 0.5f;
        if (index == kEngine) {
            parameter.hints |= kParameterIsInteger;
            parameter.name = "Engine";
            parameter.symbol = "engine";
            parameter.description = "circuit: the circuit model; neural: the trained model";
            parameter.ranges.def = 0.0f;
            parameter.enumValues.count = 2;
            parameter.enumValues.restrictedMode = true;
            parameter.enumValues.values = new ParameterEnumerationValue[2];
            parameter.enumValues.values[0].label = "circuit";
            parameter.enumValues.values[0].value = 0.0f;
            parameter.enumValues.values[1].label = "neural";
            parameter.enumValues.values[1].value = 1.0f;
            return;
        }
        parameter.name = knobs[index][0];
        parameter.symbol = knobs[index][1];
        parameter.description = "the pedal's dial: 0..1 is 0..10";
    }

    float getParameterValue(uint32_t index) const override { return fValues[index]; }

    void setParameterValue(uint32_t index, float value) override
    {
        fValues[index] = value;
        fChanged = true;
    }

    /* no state of its own: the parameters are the state, and every format saves those */
    void initState(uint32_t, State&) override {}
    void setState(const char*, const char*) override {}

    void activate() override { start(); }
    void sampleRateChanged(double) override { start(); }

    void run(const float** inputs, float** outputs, uint32_t frames) override
    {
        const ScopedFlushToZero flushing;
        if (fPedal == nullptr) {
            for (uint32_t c = 0; c < KLON_OUTPUTS; ++c)
                std::memset(outputs[c], 0, sizeof(float) * frames);
            return;
        }
        if (fChanged)
            apply();
        klon_plugin_process(fPedal, inputs, outputs, static_cast<int>(frames));
        for (uint32_t c = KLON_CHANNELS; c < KLON_OUTPUTS; ++c) /* mono to stereo */
            std::memcpy(outputs[c], outputs[0], sizeof(float) * frames);
    }

private:
    klon_plugin* const fPedal;
    float fValues[kParameterCount];
    bool fChanged;

    void apply()
    {
        fChanged = false;
        klon_plugin_set_knobs(fPedal, fValues[kGain], fValues[kTreble], fValues[kLevel]);
        klon_plugin_set_engine(fPedal, fValues[kEngine] > 0.5f ? KLON_PLUGIN_NEURAL
                                                                : KLON_PLUGIN_CIRCUIT);
        klon_plugin_set_bypass(fPedal, fValues[kBypass] > 0.5f);
    }

    /* the pedal at rest at the host's rate, every control where the host left it */
    void start()
    {
        if (fPedal == nullptr)
            return;
        apply(); /* activation then starts every control at its value */
        if (klon_plugin_activate(fPedal, getSampleRate()) != 0) /* said here, not in run() */
            d_stderr("klon: %g Hz is not a rate the pedal runs at (whole numbers from 22050 "
                     "to 192000): the audio passes through unchanged", getSampleRate());
        setLatency(static_cast<uint32_t>(klon_plugin_latency(fPedal)));
    }

    DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(KlonPlugin)
};

Plugin* createPlugin()
{
    return new KlonPlugin();
}

END_NAMESPACE_DISTRHO
