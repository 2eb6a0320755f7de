// The Android app. Build from this directory with the Android SDK and NDK installed
// (see README.md here); the JVM build of the shared Kotlin is android/jvm (Maven).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "outpost-field"
include(":app")
